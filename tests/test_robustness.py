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


def _damaged_copy(gallery_index: Path, tmp_path: Path) -> Path:
    import shutil

    index = tmp_path / "idx"
    shutil.copytree(gallery_index, index)
    return index


@pytest.mark.parametrize("manifest", ["[]", "null", '"x"', {"dim": "abc"}, {"dim": 0}, {"encoder": None}, {"encoder": {}}])
def test_a_manifest_of_the_wrong_shape_is_one_line_naming_it(gallery_index, tmp_path, capsys, manifest):
    from semcopy_lib.cli import main

    index = _damaged_copy(gallery_index, tmp_path)
    path = index / "manifest.json"
    if isinstance(manifest, dict):
        manifest = json.dumps({**json.loads(path.read_text()), **manifest})
    path.write_text(manifest)
    for command in (["index", "info", "--index", str(index)], ["search", "--index", str(index), str(path)]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"semcopy: error: {path}: ") and err.count("\n") == 1


def test_a_vector_file_of_another_size_than_the_manifest_says_is_one_line(gallery_index, tmp_path, capsys):
    from semcopy_lib.cli import main

    index = _damaged_copy(gallery_index, tmp_path)
    manifest = json.loads((index / "manifest.json").read_text())
    (index / "manifest.json").write_text(json.dumps({**manifest, "dim": 512}))
    assert main(["index", "info", "--index", str(index)]) == 2
    err = capsys.readouterr().err
    assert err == f"semcopy: error: {index / 'vectors.faiss'}: vectors have dimension 1280, the manifest says 512\n"


def test_a_truncated_vector_file_is_rebuilt_from_sqlite(gallery_index, gallery_dir, tmp_path, capsys):
    from semcopy_lib.cli import main

    query = str(gallery_dir / "food" / "img04.png")
    assert main(["search", "--index", str(gallery_index), "--json", "-k", "3", "--no-regions", query]) == 0
    expected = json.loads(capsys.readouterr().out)
    index = _damaged_copy(gallery_index, tmp_path)
    vectors = index / "vectors.faiss"
    vectors.write_bytes(vectors.read_bytes()[:1000])
    assert main(["search", "--index", str(index), "--json", "-k", "3", "--no-regions", query]) == 0
    assert json.loads(capsys.readouterr().out) == expected
    assert main(["index", "add", "--index", str(index), query]) == 0  # a writer rebuilds and saves it
    capsys.readouterr()
    assert main(["index", "verify", "--index", str(index)]) == 0


def test_a_metadata_file_that_is_not_sqlite_is_one_line_and_verify_says_so(gallery_index, tmp_path, capsys):
    from semcopy_lib.cli import main

    index = _damaged_copy(gallery_index, tmp_path)
    (index / "meta.sqlite").write_text("garbage")
    for name in ("meta.sqlite-wal", "meta.sqlite-shm"):
        (index / name).unlink(missing_ok=True)
    assert main(["index", "info", "--index", str(index)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"semcopy: error: {index / 'meta.sqlite'}: not a readable SQLite database") and err.count("\n") == 1
    assert main(["index", "verify", "--index", str(index)]) == 1
    out = capsys.readouterr().out
    assert "meta.sqlite: not a readable SQLite database" in out and "Traceback" not in out


def test_building_into_a_file_is_one_line_and_leaves_the_file(gallery_dir, tmp_path, capsys):
    from semcopy_lib.cli import main

    afile = tmp_path / "afile"
    afile.write_text("mine")
    assert main(["index", "build", str(gallery_dir), "--index", str(afile)]) == 2
    assert capsys.readouterr().err == f"semcopy: error: {afile}: not a folder\n" and afile.read_text() == "mine"


@pytest.mark.parametrize("log", ["checkpointed", "with writes in the log"])
def test_an_index_on_a_read_only_file_system_is_searched_and_refuses_writes_in_one_line(gallery_index, tmp_path,
                                                                                       monkeypatch, log):
    """A read-only mount, as the file system answers it: SQLite cannot open the file read-write (the
    write-ahead log's shared memory), and the folder is not writable. What the log holds is seen."""
    import shutil
    import sqlite3

    from semcopy_lib.index import GalleryIndex, IndexDirError
    from semcopy_lib.index import store
    from semcopy_lib.index.verify import verify

    source = tmp_path / "source"
    shutil.copytree(gallery_index, source)
    index_dir = tmp_path / "idx"
    held = sqlite3.connect(source / "meta.sqlite", isolation_level=None)
    held.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if log == "checkpointed":
        images = 12
    else:  # a removal still in the log, copied while its writer holds the database open
        held.execute("PRAGMA wal_autocheckpoint=0")
        held.execute("DELETE FROM items WHERE gallery_id = (SELECT MIN(gallery_id) FROM items)")
        images = 11
    shutil.copytree(source, index_dir)
    held.close()
    assert (index_dir / "meta.sqlite-wal").stat().st_size > 0 if images == 11 else True
    real_connect = sqlite3.connect

    def connect(database, *args, uri=False, **kwargs):
        if not uri:
            raise sqlite3.OperationalError("unable to open database file")
        return real_connect(database, *args, uri=uri, **kwargs)

    monkeypatch.setattr(store.sqlite3, "connect", connect)
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    index = GalleryIndex.open(index_dir, read_only=True)
    assert len(index) == images
    records, vectors = index.image_vectors()
    assert index.search(vectors[:1], k=1)[0][0].gallery_id == records[0].gallery_id
    with pytest.raises(IndexDirError, match=r"a read-only folder \(unable to open database file\): it can be searched, not changed"):
        GalleryIndex.open(index_dir)
    # checked there too: the log's removal leaves the vector file one vector ahead, and verify says so
    report = verify(index_dir, check_files=False)
    assert report.images == images and report.problems == ([] if images == 12 else
                                                          ["vectors.faiss: 36 vectors, meta.sqlite has 33"])  # 3 an image: 224, 320 px, 64-px shrunk view


def test_a_reader_that_goes_away_ends_the_command_quietly(gallery_index):
    """``semcopy ... | head``: the pipe closes before the command writes."""
    proc = subprocess.Popen([sys.executable, "-m", "semcopy_lib", "index", "info", "--index", str(gallery_index), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err and "BrokenPipe" not in err


def test_an_interrupt_right_after_commit_keeps_the_write_and_raises_it_unchanged(tmp_path):
    from semcopy_lib.index.store import MetadataStore, NewItem

    store = MetadataStore(tmp_path / "meta.sqlite")
    real = store.conn

    class Cursor:
        def __init__(self):
            self.inner = real.cursor()

        def execute(self, sql, *args):
            out = self.inner.execute(sql, *args)
            if sql == "COMMIT":
                raise KeyboardInterrupt  # Ctrl-C as COMMIT returns
            return out

        def __getattr__(self, name):
            return getattr(self.inner, name)

    class Connection:
        def cursor(self):
            return Cursor()

        def __getattr__(self, name):
            return getattr(real, name)

    store.conn = Connection()
    item = NewItem("a.png", "a", "0" * 64, (0, 0, 1, 1), "fake", "", np.ones(4, np.float32) / 2)
    with pytest.raises(KeyboardInterrupt):
        store.write([item])
    store.conn = real
    assert store.count() == 1 and not real.in_transaction
