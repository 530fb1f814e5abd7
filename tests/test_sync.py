"""`semcopy index sync`: the index holds exactly the folder's images after files are added, changed and
deleted; `--watch` keeps it so."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from semcopy_lib.app import build_index
from semcopy_lib.cli import main
from semcopy_lib.index import GalleryIndex

ROOT = Path(__file__).resolve().parents[1]


def _ids(index_dir: Path) -> set[str]:
    return {r.gallery_id for r in GalleryIndex.open(index_dir, read_only=True).records()}


def test_sync_adds_new_and_changed_files_and_removes_gone_ones(gallery_dir, tmp_path, capsys):
    gallery = tmp_path / "gallery"
    shutil.copytree(gallery_dir, gallery)
    index = tmp_path / "idx"
    build_index(gallery, index, progress=False)
    (gallery / "food" / "img01.png").unlink()                       # deleted
    shutil.rmtree(gallery / "shapes")                                # a whole folder deleted
    Image.effect_mandelbrot((120, 90), (-2, -1.2, 1, 1.2), 30).convert("RGB").save(gallery / "food" / "new.png")
    Image.effect_noise((80, 80), 40).convert("RGB").save(gallery / "animals" / "img00.png")  # changed
    (gallery / "notes.txt").write_text("not an image")
    capsys.readouterr()
    assert main(["index", "sync", str(gallery), "--index", str(index), "--json"]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert list(report) == ["added", "replaced", "unchanged", "skipped", "removed", "small_views"]
    assert report["small_views"] == []  # built with shrunk views: none to give
    want = {p.relative_to(gallery).as_posix() for p in gallery.rglob("*.png")}
    assert _ids(index) == want and len(GalleryIndex.open(index, read_only=True)) == len(want)
    assert report["added"] == ["food/new.png"] and report["replaced"] == ["animals/img00.png"]
    assert sorted(report["removed"]) == sorted(["food/img01.png"] + [f"shapes/stars/img{i:02d}.png" for i in (2, 5, 8, 11)])
    assert "removed food/img01.png: its file is gone" in err
    # idempotent: a second sync changes nothing
    assert main(["index", "sync", str(gallery), "--index", str(index), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["added"], again["replaced"], again["removed"], len(again["unchanged"])) == ([], [], [], len(want))


def test_sync_removes_files_that_can_no_longer_be_read(gallery_dir, tmp_path, capsys):
    gallery = tmp_path / "gallery"
    shutil.copytree(gallery_dir, gallery)
    index = tmp_path / "idx"
    build_index(gallery, index, progress=False)
    (gallery / "food" / "img01.png").write_text("hello")                    # overwritten with text
    truncated = gallery / "animals" / "img00.png"
    truncated.write_bytes(truncated.read_bytes()[:2000])
    capsys.readouterr()
    assert main(["index", "sync", str(gallery), "--index", str(index), "--json"]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert sorted(report["removed"]) == ["animals/img00.png", "food/img01.png"]
    assert sorted(s["file"] for s in report["skipped"]) == sorted([str(truncated), str(gallery / "food" / "img01.png")])
    assert "removed food/img01.png: its file can no longer be read" in err
    want = {p.relative_to(gallery).as_posix() for p in gallery.rglob("*.png")} - {"animals/img00.png", "food/img01.png"}
    assert _ids(index) == want and len(want) == 10
    assert main(["index", "sync", str(gallery), "--index", str(index), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == []


def test_sync_keeps_what_came_from_elsewhere(gallery_dir, tmp_path, capsys):
    gallery = tmp_path / "gallery"
    shutil.copytree(gallery_dir / "food", gallery / "food")
    index = tmp_path / "idx"
    build_index(gallery, index, progress=False)
    other = tmp_path / "elsewhere"
    shutil.copytree(gallery_dir / "animals", other / "animals")
    assert main(["index", "add", "--index", str(index), str(other / "animals")]) == 0
    assert main(["index", "sync", str(gallery), "--index", str(index), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["removed"] == []
    assert {i.split("/")[0] for i in _ids(index)} == {"food", "animals"}


def test_watch_picks_up_a_new_file_within_five_seconds(gallery_dir, tmp_path):
    gallery = tmp_path / "gallery"
    shutil.copytree(gallery_dir, gallery)
    index = tmp_path / "idx"
    build_index(gallery, index, progress=False)
    log = open(tmp_path / "watch.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "semcopy_lib", "index", "sync", str(gallery), "--index", str(index),
                             "--watch"], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120  # the model loads; the first sync runs once it watches
        while "12 unchanged" not in (tmp_path / "watch.log").read_text():
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "watch.log").read_text()
            time.sleep(0.2)
        Image.effect_mandelbrot((100, 80), (-2, -1.2, 1, 1.2), 50).convert("RGB").save(gallery / "food" / "fresh.png")
        start = time.monotonic()
        while "food/fresh.png" not in _ids(index):
            assert time.monotonic() - start < 5, (tmp_path / "watch.log").read_text()
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_verify_names_gone_and_changed_files_and_the_sync_that_fixes_them(gallery_dir, tmp_path, capsys):
    from semcopy_lib.index.verify import verify

    gallery = tmp_path / "gallery"
    shutil.copytree(gallery_dir, gallery)
    index = tmp_path / "idx"
    build_index(gallery, index, progress=False)
    (gallery / "food" / "img01.png").unlink()
    Image.effect_noise((80, 80), 40).convert("RGB").save(gallery / "animals" / "img00.png")
    warnings = verify(index).warnings
    sync = f"'semcopy index sync {gallery.resolve()} --index {index}'"
    assert warnings == [
        f"1 indexed image files are gone (search still finds their vectors; {sync} removes them): {gallery.resolve() / 'food' / 'img01.png'}",
        f"1 indexed image files changed since ({sync} indexes them again): {gallery.resolve() / 'animals' / 'img00.png'}"]
    assert main(["index", "sync", str(gallery), "--index", str(index)]) == 0
    assert verify(index).warnings == []


def test_an_index_built_without_shrunk_views_is_told_and_given_them_by_a_sync(gallery_dir, tmp_path, capsys):
    """Built while ``pictures.small`` was 0, then the setting turned on: `index verify` warns that every
    image lacks its shrunk view and names the sync that gives them; the sync does (JSON ``small_views``),
    after which verify is quiet and a second sync gives none."""
    from dataclasses import replace

    from semcopy_lib.app import index_files
    from semcopy_lib.app.indexing import query_config
    from semcopy_lib.data import scan_images
    from semcopy_lib.encoders import DEFAULT_ENCODER, create_encoder

    gallery = tmp_path / "gallery"
    shutil.copytree(gallery_dir, gallery)
    index_dir = tmp_path / "idx"
    encoder = create_encoder(DEFAULT_ENCODER)
    index = GalleryIndex.create(index_dir, encoder.config.to_dict(), encoder.dim, root=gallery.resolve())
    config = query_config(index)
    index.set_query(replace(config, pictures=replace(config.pictures, small=0)).to_dict())
    index_files(index, scan_images(gallery), encoder, progress=False)
    index.close()
    ids = sorted(_ids(index_dir))
    assert main(["index", "settings", "--index", str(index_dir), "--set", "pictures.small=64"]) == 0
    capsys.readouterr()
    assert main(["index", "verify", "--index", str(index_dir), "--json"]) == 0
    sync = f"'semcopy index sync {gallery.resolve()} --index {index_dir}'"
    assert json.loads(capsys.readouterr().out)["warnings"] == [
        f"{len(ids)} indexed images have no shrunk view, which the search settings ask for (pictures.small 64; "
        f"indexed before it was on): {sync} gives them theirs"]
    assert main(["index", "sync", str(gallery), "--index", str(index_dir), "--json"]) == 0
    assert sorted(json.loads(capsys.readouterr().out)["small_views"]) == ids
    assert main(["index", "verify", "--index", str(index_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"] == []
    assert main(["index", "sync", str(gallery), "--index", str(index_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["small_views"] == []
