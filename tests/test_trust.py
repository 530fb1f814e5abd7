"""An index folder never makes semcopy run code: weights that only an unpickling (or evaluating)
loader opens load from a manifest only when the user named them (semcopy_lib.data.trust)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest

from semcopy_lib.cli import main
from semcopy_lib.data.trust import UntrustedWeights, check_loadable, from_manifest, trust, trusted
from semcopy_lib.encoders.headed import save_head
from semcopy_lib.encoders.headed import ResidualHead


class _Trap:
    """Unpickling this makes the folder ``marker``: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def booby_trapped(folder: Path) -> tuple[Path, Path]:
    """(a .pt whose unpickling runs os.mkdir, the folder it would make)."""
    marker = folder / "code-ran"
    path = folder / "weights.pt"
    path.write_bytes(pickle.dumps(_Trap(marker)))
    return path, marker


def copied_index(gallery_index: Path, where: Path, encoder: dict) -> Path:
    """The shared test index copied to ``where`` with its manifest's encoder replaced, as a stranger could."""
    index = where / "idx"
    shutil.copytree(gallery_index, index)
    manifest = json.loads((index / "manifest.json").read_text())
    manifest["encoder"] = encoder
    (index / "manifest.json").write_text(json.dumps(manifest))
    return index


def test_the_trap_does_run_code_when_unpickled(tmp_path):
    path, marker = booby_trapped(tmp_path)
    pickle.loads(path.read_bytes())  # what ultralytics' loader would do
    assert marker.is_dir()


def _head_pointing_at(path: Path, folder: Path) -> Path:
    head = ResidualHead(8, 4)
    return save_head(folder / "head.pt", head, "yolo-oiv7", {}, {}, None, base_path=str(path))


@pytest.mark.parametrize("variant", ["yolo", "concat", "head", "yaml"])
def test_a_booby_trapped_index_runs_nothing_and_says_how_to_allow(variant, gallery_index, gallery_dir, tmp_path, capsys):
    path, marker = booby_trapped(tmp_path)
    if variant == "yaml":  # ultralytics evaluates a model config's activation
        path = tmp_path / "model.yaml"
        path.write_text(f"nc: 2\nactivation: __import__('os').mkdir({str(marker)!r})\n"
                        "backbone: [[-1, 1, Conv, [16, 3, 2]]]\nhead: [[-1, 1, Conv, [16, 3, 2]]]\n")
    encoder = {"yolo": {"name": "yolo-oiv7", "path": str(path)},
               "yaml": {"name": "yolo-oiv7", "path": str(path)},
               "concat": {"name": "concat", "path": f"effnet-lite0,yolo-oiv7|1,1|,{path}"},
               "head": {"name": "semcopy-head", "path": str(_head_pointing_at(path, tmp_path))}}[variant]
    index = copied_index(gallery_index, tmp_path, encoder)
    query = next(gallery_dir.rglob("*.png"))
    code = main(["search", "--index", str(index), "--json", str(query)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert not marker.exists()
    lines = [line for line in err.splitlines() if line.startswith("semcopy: error:")]
    assert len(lines) == 1 and f"semcopy trust {path}" in lines[0] and "manifest.json" in lines[0]
    assert "Traceback" not in err


def test_trusted_files_load_from_a_manifest_until_they_change(tmp_path, monkeypatch):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"some weights")
    with from_manifest(tmp_path / "manifest.json"):
        with pytest.raises(UntrustedWeights):
            check_loadable(weights, "ultralytics")
        assert main(["trust", str(weights)]) == 0
        check_loadable(weights, "ultralytics")
        weights.write_bytes(b"other weights")  # a changed file is a new file
        with pytest.raises(UntrustedWeights):
            check_loadable(weights, "ultralytics")
        monkeypatch.setenv("SEMCOPY_TRUSTED_WEIGHTS", str(tmp_path))  # a folder the user allows
        check_loadable(weights, "ultralytics")
    check_loadable(tmp_path / "anything.pt", "ultralytics")  # named directly, not by a manifest


def test_ultralytics_own_model_configs_and_trust_of_missing_files(tmp_path):
    assert trusted("yolov8n.yaml")  # shipped inside ultralytics
    assert not trusted(tmp_path / "yolov8n.yaml")
    with pytest.raises(FileNotFoundError):
        trust(tmp_path / "missing.pt")
    assert main(["trust", str(tmp_path / "missing.pt")]) == 2


def test_an_index_built_with_named_weights_searches_again(gallery_dir, tmp_path, capsys):
    from ultralytics import YOLO

    from semcopy_lib.data.trust import trust_file

    weights = tmp_path / "tiny.pt"
    YOLO("yolov8n.yaml").save(weights)  # random weights, saved as ultralytics saves a checkpoint
    index = tmp_path / "idx"
    assert main(["index", "build", str(gallery_dir), "--index", str(index), "--encoder", "yolo-oiv7",
                 "--encoder-path", str(weights)]) == 0
    assert str(weights.resolve()) in json.loads(trust_file().read_text())  # named here: trusted
    query = next(gallery_dir.rglob("*.png"))
    assert main(["search", "--index", str(index), "--json", str(query)]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert hits[0]["id"] == query.relative_to(gallery_dir).as_posix()


def test_a_file_that_is_no_model_is_one_line(tmp_path, capsys):
    weights = tmp_path / "broken.pt"
    weights.write_bytes(b"not a checkpoint")
    assert main(["index", "build", str(tmp_path), "--index", str(tmp_path / "idx"), "--encoder", "yolo-oiv7",
                 "--encoder-path", str(weights)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{weights}: not a loadable YOLO model" in err
