"""docs/extending.md's examples run as written: every Python block of a section, in order, in one
namespace holding ``GALLERY`` (class folders of images) and ``WORK`` (an empty folder)."""

import re
import shutil
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


def _sections() -> dict[str, list[str]]:
    sections, current = {}, None
    for part in re.split(r"^## ", DOC.read_text(), flags=re.M)[1:]:
        title, _, body = part.partition("\n")
        current = sections.setdefault(title.strip(), [])
        current += re.findall(r"```python\n(.*?)```", body, flags=re.S)
    return sections


def test_the_page_has_the_three_worked_examples():
    assert {title: len(blocks) for title, blocks in _sections().items()} == {
        "Add an encoder": 2, "Add an index backend": 2, "Add a region proposer": 2}


@pytest.mark.parametrize("title", ["Add an encoder", "Add an index backend", "Add a region proposer"])
def test_the_example_runs(title, gallery_dir, tmp_path):
    from semcopy_lib.encoders import registry
    from semcopy_lib.index.backends import BACKENDS
    from semcopy_lib.query import PROPOSERS

    before = (dict(registry._REGISTRY), dict(BACKENDS), dict(PROPOSERS))
    namespace = {"GALLERY": gallery_dir, "WORK": tmp_path, "__name__": f"extending_{len(title)}"}
    try:
        for block in _sections()[title]:
            exec(compile(block, f"{DOC.name}: {title}", "exec"), namespace)
    finally:  # the registries as they were: other tests see only the built-in ones
        for live, saved in zip((registry._REGISTRY, BACKENDS, PROPOSERS), before):
            live.clear()
            live.update(saved)
        shutil.rmtree(tmp_path, ignore_errors=True)
