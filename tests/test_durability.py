"""A killed build loses nothing, two writers never write at once, verify finds and repairs damage."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from semcopy_lib.index import GalleryIndex, IndexLocked
from semcopy_lib.index.verify import repair, verify
from tests.conftest import pattern_image
from tests.test_index import DIM, ENC, items, unit

N_IMAGES = 36


def rows(index_dir: Path) -> list[tuple[str, str, bytes]]:
    """(gallery id, box, vector bytes) of every stored vector (an image has several views of one box)."""
    with sqlite3.connect(index_dir / "meta.sqlite") as conn:
        return conn.execute("SELECT gallery_id, box, vector FROM items ORDER BY gallery_id, box").fetchall()


def images_in(index_dir: Path) -> int:
    if not (index_dir / "meta.sqlite").exists():
        return 0
    try:
        with sqlite3.connect(index_dir / "meta.sqlite", timeout=1) as conn:
            return conn.execute("SELECT COUNT(DISTINCT gallery_id) FROM items").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def build_cmd(gallery: Path, index_dir: Path) -> list[str]:
    return [sys.executable, "-m", "semcopy_lib", "index", "build", str(gallery), "--index", str(index_dir),
            "--batch-size", "4"]


def test_sigkill_at_random_points_then_rerun_ends_with_the_exact_set(tmp_path):
    gallery = tmp_path / "g"
    for i in range(N_IMAGES):
        folder = gallery / f"c{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        pattern_image(100 + i, (120, 90)).save(folder / f"img{i:02d}.png")
    expected = {f"c{i % 4}/img{i:02d}.png" for i in range(N_IMAGES)}
    index_dir = tmp_path / "idx"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    rng = random.Random(8)
    # kill while starting (before any image), then each time a random number more images are in
    targets = [0] + sorted(rng.sample(range(2, N_IMAGES - 2), 3))
    killed_at = []
    for target in targets:
        proc = subprocess.Popen(build_cmd(gallery, index_dir), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while images_in(index_dir) < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.3))  # land anywhere: mid-batch, mid-transaction, mid-save
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_at.append(images_in(index_dir))
    assert any(0 < n < N_IMAGES for n in killed_at), f"no kill landed mid-build: {killed_at}"
    done = subprocess.run(build_cmd(gallery, index_dir), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    stored = rows(index_dir)
    assert {gid for gid, _, _ in stored} == expected  # none lost
    assert len(stored) == len(set(stored))  # none twice
    per_image = {gid: sum(g == gid for g, _, _ in stored) for gid in expected}
    assert len(set(per_image.values())) == 1  # every image has all its views
    report = verify(index_dir)
    assert report.ok, report.problems
    index = GalleryIndex.open(index_dir, read_only=True)
    assert len(index) == N_IMAGES and index.backend.count == len(stored)


def test_a_second_writer_fails_clearly_while_the_first_writes(tmp_path):
    first = GalleryIndex.create(tmp_path / "idx", ENC, DIM)
    second = GalleryIndex.open(tmp_path / "idx")
    vecs = unit(np.random.default_rng(0), 4)
    with first.writing():
        with pytest.raises(IndexLocked, match=f"pid {os.getpid()}"):
            second.add(items(vecs[:2], prefix="b"))
        first.add(items(vecs[2:], prefix="a"))
    second.add(items(vecs[:2], prefix="b"))  # the lock is free again; second catches up first
    assert sorted(r.gallery_id for r in second.records()) == ["a/0.png", "a/1.png", "b/0.png", "b/1.png"]
    assert second.backend.count == 4
    reopened = GalleryIndex.open(tmp_path / "idx")
    assert len(reopened) == 4 and reopened.backend.count == 4
    assert verify(tmp_path / "idx", check_files=False).ok


def test_a_waiting_writer_goes_on_when_the_lock_is_freed(tmp_path):
    first = GalleryIndex.create(tmp_path / "idx", ENC, DIM)
    second = GalleryIndex.open(tmp_path / "idx")
    import threading

    first.lock.acquire()
    threading.Timer(0.5, first.lock.release).start()
    t0 = time.monotonic()
    with second.writing(wait=10):
        waited = time.monotonic() - t0
    assert 0.4 < waited < 5


def test_the_cli_refuses_to_write_a_locked_index(tmp_path):
    GalleryIndex.create(tmp_path / "idx", ENC, DIM)
    holder = GalleryIndex.open(tmp_path / "idx")
    pattern_image(1).save(tmp_path / "new.png")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    with holder.writing():
        out = subprocess.run([sys.executable, "-m", "semcopy_lib", "index", "remove", "--index", str(tmp_path / "idx"), "c/0.png"],
                             env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "another process is writing this index" in out.stderr
    assert "Traceback" not in out.stderr


def test_searches_see_what_another_process_added(tmp_path):
    writer = GalleryIndex.create(tmp_path / "idx", ENC, DIM)
    reader = GalleryIndex.open(tmp_path / "idx", read_only=True)
    vecs = unit(np.random.default_rng(1), 3)
    writer.add(items(vecs))
    hits = reader.search(vecs[2:], k=1)
    assert hits[0][0].gallery_id == "c/2.png" and hits[0][0].score == pytest.approx(1.0, abs=1e-5)


def test_verify_finds_a_stale_vector_file_and_repair_rebuilds_it(tmp_path):
    index = GalleryIndex.create(tmp_path / "idx", ENC, DIM)
    vecs = unit(np.random.default_rng(2), 6)
    index.add(items(vecs[:3]))
    stale = (tmp_path / "idx" / "vectors.faiss").read_bytes()
    index.add(items(vecs[3:], prefix="d"))
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    index.close()
    # a crash between the vector file and the manifest: an old vector file under a new manifest
    (tmp_path / "idx" / "vectors.faiss").write_bytes(stale)
    (tmp_path / "idx" / "vectors.faiss.tmp").write_bytes(b"half")
    report = verify(tmp_path / "idx", check_files=False)
    assert not report.ok
    assert report.problems == ["vectors.faiss: 3 vectors, meta.sqlite has 6"]
    assert "--repair" in report.repair and report.repairable and any("vectors.faiss.tmp" in w for w in report.warnings)
    fixed = repair(tmp_path / "idx")
    assert fixed.ok and fixed.vectors == 6 and not fixed.warnings
    assert json.loads((tmp_path / "idx" / "manifest.json").read_text())["count"] == manifest["count"] == 6


def test_verify_finds_rows_that_are_not_unit_vectors(tmp_path):
    index = GalleryIndex.create(tmp_path / "idx", ENC, DIM)
    index.add(items(unit(np.random.default_rng(3), 2)))
    index.close()
    with sqlite3.connect(tmp_path / "idx" / "meta.sqlite") as conn:
        conn.execute("UPDATE items SET vector = ? WHERE id = 1", (np.full(DIM, np.nan, np.float32).tobytes(),))
    report = verify(tmp_path / "idx", check_files=False)
    assert report.problems[0] == "meta.sqlite: 1 rows whose vector is not finite and unit length"
    assert "index build" in report.repair and not report.repairable  # only the images can rebuild SQLite
    with sqlite3.connect(tmp_path / "idx" / "meta.sqlite") as conn:  # and a row twice does not change that
        conn.execute("INSERT INTO items (gallery_id, label, sha256, box, encoder, source, vector) "
                     "SELECT gallery_id, label, sha256, box, encoder, source, vector FROM items WHERE id = 2")
    report = verify(tmp_path / "idx", check_files=False)
    assert report.problems[1].startswith("meta.sqlite: 1 rows stored twice") and "index build" in report.repair
    assert not report.repairable


def test_repair_drops_rows_stored_twice_and_keeps_the_first(tmp_path):
    """An index written before rows were kept unique may hold a row twice: --repair drops the later one
    (the image stays, with its one vector), unless SQLite has other problems, which need the images."""
    index = GalleryIndex.create(tmp_path / "idx", ENC, DIM)
    vecs = unit(np.random.default_rng(5), 3)
    index.add(items(vecs))
    index.close()
    with sqlite3.connect(tmp_path / "idx" / "meta.sqlite") as conn:
        conn.execute("INSERT INTO items (gallery_id, label, sha256, box, encoder, source, vector) "
                     "SELECT gallery_id, label, sha256, box, encoder, source, vector FROM items WHERE id = 2")
    report = verify(tmp_path / "idx", check_files=False)
    assert report.problems[0] == ("meta.sqlite: 1 rows stored twice (an earlier row of the image has the same box, "
                                  "role and vector)")
    assert report.repairable and "drops the rows stored twice" in report.repair
    fixed = repair(tmp_path / "idx")
    assert fixed.ok and (fixed.images, fixed.vectors) == (3, 3)
    assert [r[0] for r in sqlite3.connect(tmp_path / "idx" / "meta.sqlite").execute("SELECT id FROM items")] == [1, 2, 3]
    index = GalleryIndex.open(tmp_path / "idx", read_only=True)
    assert [h.gallery_id for h in index.search(vecs[1:2], k=3)[0]][0] == index.records()[1].gallery_id
    index.close()


def test_cli_verify_repair_deletes_leftovers_of_a_crash_on_a_consistent_index(tmp_path, capsys):
    from semcopy_lib.cli import main

    index = GalleryIndex.create(tmp_path / "idx", ENC, DIM)
    index.add(items(unit(np.random.default_rng(4), 3)))
    index.close()
    (tmp_path / "idx" / "manifest.json.tmp").write_text("{")
    assert main(["index", "verify", "--index", str(tmp_path / "idx"), "--no-files"]) == 0
    assert "manifest.json.tmp" in capsys.readouterr().out and (tmp_path / "idx" / "manifest.json.tmp").exists()
    assert main(["index", "verify", "--index", str(tmp_path / "idx"), "--no-files", "--repair", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["warnings"] == [] and report["vectors"] == 3
    assert not (tmp_path / "idx" / "manifest.json.tmp").exists()


def test_a_drawing_saved_with_an_opaque_alpha_band_indexes_consistently(tmp_path):
    """A PNG with an alpha channel and no transparent pixel (a logo saved as RGBA) is opaque: one
    vector per gallery size and its shrunk view, none stored twice (a grey view of it would repeat the
    white one)."""
    from semcopy_lib.app import build_index

    gallery = tmp_path / "gallery" / "logos"
    gallery.mkdir(parents=True)
    pattern_image(0).convert("RGBA").save(gallery / "solid.png")
    index, _ = build_index(tmp_path / "gallery", tmp_path / "idx", progress=False)
    assert sorted(r.small for r in index.records()) == [False, False, True]  # 224 and 320 px on white; 64 px
    index.close()
    assert verify(tmp_path / "idx").ok


def test_a_picture_that_is_its_own_shrunk_view_is_consistent_and_repair_keeps_both_roles(tmp_path):
    """An icon no larger than the shrunk views' side is its own shrunk view: that row may repeat its
    224-px row's box and vector (a 50 x 50 LED of the bench gallery, byte for byte) while it serves small
    parts only. `verify` does not call it stored twice, and `--repair` (after a true double) keeps it."""
    from semcopy_lib.index import NewItem

    index = GalleryIndex.create(tmp_path / "idx", ENC, DIM)
    vec = unit(np.random.default_rng(6), 1)[0]
    index.add([NewItem("icons/led.png", "icons", "s", (0, 0, 50, 50), ENC["name"], "", vec),
               NewItem("icons/led.png", "icons", "s", (0, 0, 50, 50), ENC["name"], "", vec, parts_only=True, small=True)])
    index.close()
    report = verify(tmp_path / "idx", check_files=False)
    assert report.ok and (report.images, report.vectors) == (1, 2)
    with sqlite3.connect(tmp_path / "idx" / "meta.sqlite") as conn:  # a true double of the small row
        conn.execute("INSERT INTO items (gallery_id, label, sha256, box, encoder, source, vector, parts_only) SELECT "
                     "gallery_id, label, sha256, box, encoder, source, vector, parts_only FROM items WHERE parts_only = 2")
    assert verify(tmp_path / "idx", check_files=False).problems[0].startswith("meta.sqlite: 1 rows stored twice")
    fixed = repair(tmp_path / "idx")
    assert fixed.ok and fixed.vectors == 2
    with sqlite3.connect(tmp_path / "idx" / "meta.sqlite") as conn:
        assert [r[0] for r in conn.execute("SELECT parts_only FROM items ORDER BY id")] == [0, 2]
