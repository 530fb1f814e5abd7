"""Malformed and hostile files: one named line each, the good ones found, no traceback, bounded memory;
property-based tests on the image loader and the segmenter."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FUZZ
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from semcopy_lib.data import ImageLoadError, load_image
from semcopy_lib.data.adversarial import write_corpus
from semcopy_lib.segment import Layout, _on_canvas, analyse

ROOT = Path(__file__).resolve().parents[1]
#: Peak memory allowed for a CLI run over the corpus (torch + the model take ~0.8 GB; a decoded
#: 30,000 x 30,000 bomb alone would take 2.7 GB).
MAX_RSS_MB = 1500


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, str | None]]:
    root = tmp_path_factory.mktemp("adversarial")
    return root, write_corpus(root / "misc")


def run_measured(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run the CLI in a child; returns (result, its peak resident memory in MB)."""
    # VmHWM is this process's own peak (ru_maxrss would include the forking pytest's, kept across exec)
    code = ("import re, sys; from semcopy_lib.cli import main; rc = main(sys.argv[1:]); "
            "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1); "
            "print('MAXRSS', hwm, file=sys.stderr); sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    rss = [int(line.split()[1]) / 1024 for line in out.stderr.splitlines() if line.startswith("MAXRSS")]
    return out, rss[0] if rss else float("nan")


def test_loader_refuses_each_bad_file_with_its_reason_and_reads_each_good_one(corpus):
    root, expect = corpus
    for name, reason in expect.items():
        path = root / "misc" / name
        if reason is None:
            img = load_image(path)
            assert img.mode == "RGB" and min(img.size) >= 1
        else:
            with pytest.raises(ImageLoadError) as err:
                load_image(path)
            assert str(err.value).startswith(str(path) + ": ") and "\n" not in str(err.value)
            assert reason.lower() in str(err.value).lower(), (name, str(err.value))


def test_odd_images_are_read_upright_in_rgb(corpus):
    root, _ = corpus
    assert load_image(root / "misc" / "exif-rotated.jpg").size == (100, 160)  # stored 160 x 100, EXIF 6
    assert load_image(root / "misc" / "animated.gif").size == (160, 120)
    grey16 = np.asarray(load_image(root / "misc" / "grey16.png"))
    assert grey16[0, 0].tolist() == [255, 255, 255] and grey16[0, -1].tolist() == [0, 0, 0]


def test_index_build_indexes_the_good_files_and_lists_the_bad_ones(corpus, tmp_path):
    root, expect = corpus
    out, rss = run_measured("index", "build", str(root), "--index", str(tmp_path / "idx"), "--json")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    report = json.loads(out.stdout)
    good = {f"misc/{n}" for n, r in expect.items() if r is None}
    assert set(report["added"]) == good
    skipped = {Path(s["file"]).name: s["error"] for s in report["skipped"]}
    assert set(skipped) == {n for n, r in expect.items() if r is not None}
    for name, error in skipped.items():
        assert expect[name].lower() in error.lower(), (name, error)
    assert rss < MAX_RSS_MB


def test_search_json_answers_every_file_in_order(corpus, tmp_path):
    root, expect = corpus
    index = tmp_path / "idx"
    assert run_measured("index", "build", str(root), "--index", str(index))[0].returncode == 0
    names = sorted(expect)
    # a query path with '..' in it is just a path: it is read, and its name is what the JSON says
    queries = [str(root / "misc" / n) for n in names] + [str(root / "misc" / ".." / "misc" / "good.jpg")]
    out, rss = run_measured("search", "--index", str(index), "--json", "-k", "3", *queries)
    assert out.returncode == 0 and "Traceback" not in out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line["query"] for line in lines] == queries
    for name, line in zip(names + ["good.jpg"], lines):
        if expect[name] is None:
            assert "error" not in line and line["hits"][0]["id"] == f"misc/{name}", line
        else:
            assert set(line) == {"query", "error"} and line["error"].startswith(queries[names.index(name)] + ": ")
    assert rss < MAX_RSS_MB
    one_bad = [str(root / "misc" / "good.jpg"), str(root / "misc" / "zero-bytes.jpg")]
    assert run_measured("search", "--index", str(index), "--json", *one_bad)[0].returncode == 0
    assert run_measured("search", "--index", str(index), "--json", "--strict", *one_bad)[0].returncode == 1


@settings(max_examples=60 * FUZZ, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=0, max_size=3000))
def test_loader_on_random_bytes_returns_an_image_or_one_named_line(data):
    try:
        img = load_image(data, name="fuzz.bin")
    except ImageLoadError as err:
        assert str(err).startswith("fuzz.bin: ") and "\n" not in str(err)
    else:
        assert img.mode == "RGB"


def _png(width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@settings(max_examples=40 * FUZZ, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 300), st.integers(1, 300), st.integers(0, 2**16), st.integers(0, 400), st.integers(0, 255))
def test_loader_on_corrupted_pngs(width, height, seed, cut, flip):
    """A real PNG truncated or with one byte changed: decoded or refused in one line, never anything else."""
    data = bytearray(_png(width, height, seed))
    if cut:
        data = data[: max(1, len(data) - cut)]
    data[min(len(data) - 1, 8 + flip % 64)] ^= 0xFF
    try:
        load_image(bytes(data), name="x.png")
    except ImageLoadError as err:
        assert "\n" not in str(err)


@st.composite
def layouts(draw) -> Image.Image:
    """Images of any size 1-400 px with random flat blocks, frames and noise: what pages and collages
    are made of, in shapes no generator of ours makes."""
    width, height = draw(st.integers(1, 400)), draw(st.integers(1, 400))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    arr = np.full((height, width, 3), draw(st.integers(0, 255)), np.uint8)
    for _ in range(draw(st.integers(0, 6))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = int(rng.integers(x0, width + 1)), int(rng.integers(y0, height + 1))
        if draw(st.booleans()):
            arr[y0:y1, x0:x1] = rng.integers(0, 255, (y1 - y0, x1 - x0, 3))
        else:
            arr[y0:y1, x0:x1] = rng.integers(0, 255, 3)
    return Image.fromarray(arr)


@settings(max_examples=60 * FUZZ, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layouts())
def test_segmenter_returns_boxes_inside_the_image_for_any_picture(image):
    layout = analyse(image)
    assert layout.layout in {"single", "screenshot", "collage"}
    assert layout.boxes
    width, height = image.size
    for x, y, w, h in layout.boxes:
        assert 0 <= x < width and 0 <= y < height and w >= 1 and h >= 1
        assert x + w <= width and y + h <= height


def test_a_box_reaching_past_a_narrow_images_edge_is_clipped_before_its_canvas_is_grown():
    """Found by the property test above on a 50 x 394 picture: an edge rectangle rounded back from the
    work scale reached a column past the right edge, and growing its canvas raised IndexError."""
    rgb = np.full((394, 50, 3), 200, np.uint8)
    layout = _on_canvas(rgb, Layout("screenshot", [(27, 307, 24, 64)]))
    assert layout.boxes == [(27, 307, 23, 64)]
