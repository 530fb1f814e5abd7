import json

import numpy as np
import pytest

from semcopy_lib.index import EncoderMismatch, GalleryIndex, IndexDirError, NewItem

DIM = 8
ENC = {"name": "fake", "image_size": 32, "mean": [0.5] * 3, "std": [0.5] * 3, "resize": "squash", "path": None, "options": {}}


def unit(rng, n):
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def items(vectors, prefix="c", sha="s"):
    return [NewItem(f"{prefix}/{i}.png", prefix, f"{sha}{i}", (0, 0, 10, 10), "fake", f"/x/{i}.png", v)
            for i, v in enumerate(vectors)]


@pytest.fixture
def index(tmp_path):
    return GalleryIndex.create(tmp_path / "idx", ENC, DIM)


def test_exact_search_matches_bruteforce_numpy(index):
    rng = np.random.default_rng(0)
    vecs = unit(rng, 50)
    index.add(items(vecs))
    queries = unit(rng, 5)
    hits = index.search(queries, k=7)
    ids = [r.id for r in index.records()]
    stored = np.stack([index.backend.reconstruct(np.array([i]))[0] for i in ids])
    np.testing.assert_allclose(stored, vecs, atol=1e-6)
    expect = np.argsort(-(queries @ stored.T), axis=1)[:, :7]
    gid = {r.id: r.gallery_id for r in index.records()}
    for row, exp in zip(hits, expect):
        assert [h.gallery_id for h in row] == [gid[ids[j]] for j in exp]
        scores = [h.score for h in row]
        assert scores == sorted(scores, reverse=True)


def test_add_same_content_is_noop_changed_content_replaces(index):
    rng = np.random.default_rng(1)
    vecs = unit(rng, 3)
    first = index.add(items(vecs))
    assert first.added == ["c/0.png", "c/1.png", "c/2.png"]
    again = index.add(items(vecs))
    assert again.unchanged == ["c/0.png", "c/1.png", "c/2.png"] and not again.added
    assert index.backend.count == 3
    new_vec = unit(rng, 1)[0]
    report = index.add([NewItem("c/1.png", "c", "other", (0, 0, 5, 5), "fake", "/x/1.png", new_vec)])
    assert report.replaced == ["c/1.png"]
    assert len(index) == 3 and index.backend.count == 3
    top = index.search(new_vec[None], k=1)[0][0]
    assert top.gallery_id == "c/1.png" and top.score == pytest.approx(1.0, abs=1e-5)


def test_remove_and_persist_and_reload(tmp_path, index):
    rng = np.random.default_rng(2)
    vecs = unit(rng, 6)
    index.add(items(vecs))
    assert index.remove(["c/2.png", "nope.png"]) == ["nope.png"]
    index.close()
    again = GalleryIndex.open(tmp_path / "idx")
    assert len(again) == 5
    assert "c/2.png" not in {r.gallery_id for r in again.records()}
    top = again.search(vecs[3][None], k=1)[0][0]
    assert top.gallery_id == "c/3.png" and top.label == "c" and top.gallery_box == (0, 0, 10, 10)
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["count"] == 5 and manifest["dim"] == DIM and manifest["encoder"]["name"] == "fake"
    assert manifest["format_version"] == 1


def test_backend_file_behind_sqlite_is_rebuilt(tmp_path, index):
    rng = np.random.default_rng(3)
    vecs = unit(rng, 4)
    index.add(items(vecs[:2]))
    index.add(items(vecs[2:], prefix="d"), save=False)  # like a build killed before its final save
    index.close()
    again = GalleryIndex.open(tmp_path / "idx")
    assert again.backend.count == 4 and len(again) == 4
    (tmp_path / "idx" / "vectors.faiss").unlink()
    assert GalleryIndex.open(tmp_path / "idx").backend.count == 4


def test_encoder_mismatch_is_a_clear_error(index):
    rng = np.random.default_rng(4)
    index.add(items(unit(rng, 2)))
    with pytest.raises(EncoderMismatch, match="built with encoder 'fake', not 'effnet-lite0'"):
        index.search(unit(rng, 1), k=1, encoder="effnet-lite0")
    with pytest.raises(EncoderMismatch):
        index.add([NewItem("z.png", "", "q", (0, 0, 1, 1), "effnet-lite0", "/z.png", unit(rng, 1)[0])])


def test_open_non_index_and_double_create(tmp_path, index):
    with pytest.raises(IndexDirError, match="not a semcopy index"):
        GalleryIndex.open(tmp_path)
    with pytest.raises(IndexDirError, match="already holds an index"):
        GalleryIndex.create(tmp_path / "idx", ENC, DIM)


def test_search_on_empty_index(index):
    assert index.search(np.ones((2, DIM), np.float32) / np.sqrt(DIM), k=3) == [[], []]


def test_flat_backend_matrix_search_equals_faiss_own_search():
    from semcopy_lib.index.backends import FaissBackend

    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(300, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    backend = FaissBackend(16)
    ids = np.arange(300) * 5 + 3
    backend.add(ids, vectors)
    backend.remove(ids[10:20])  # the storage moves: the cached view must follow
    queries = vectors[:7] + 0.05 * rng.normal(size=(7, 16)).astype(np.float32)
    scores, found = backend.search(queries, 10)
    ref_scores, ref_found = backend.index.search(np.ascontiguousarray(queries), 10)
    assert (found == ref_found).all() and np.allclose(scores, ref_scores, atol=1e-5)
    small = FaissBackend(16)
    small.add(np.array([7, 8]), vectors[:2])
    _, found = small.search(vectors[:1], 4)
    assert found.tolist() == [[7, 8, -1, -1]]  # missing slots are -1


def test_past_the_flat_limit_the_index_becomes_ivf_sq8_with_measured_recall(tmp_path):
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(40, 32))
    vectors = (centres[rng.integers(0, 40, 3000)] + 0.3 * rng.normal(size=(3000, 32))).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = GalleryIndex.create(tmp_path / "idx", {"name": "e"}, 32)
    index.add([NewItem(f"c/{i}.png", "c", f"s{i}", (0, 0, 1, 1), "e", f"/{i}.png", v) for i, v in enumerate(vectors)])
    assert index.optimise() is None and index.info()["vector_index"] == "flat"  # under FLAT_MAX: exact
    report = index.optimise(force=True)
    assert report["index"].endswith(",SQ8") and report["recall_at_k"] >= 0.95 and report["vectors"] == 3000
    assert index.info()["vector_index"].startswith("IVF")
    index.close()
    again = GalleryIndex.open(tmp_path / "idx")  # the trained index is what was saved
    assert again.info()["vector_index"] == f"{report['index']} nprobe {report['nprobe']}"
    [hits] = again.search(vectors[5:6], k=1)
    assert hits[0].gallery_id == "c/5.png" and hits[0].score == pytest.approx(1.0, abs=0.02)  # SQ8: ~1 %
    assert again.remove(["c/5.png"]) == [] and "c/5.png" not in [h.gallery_id for h in again.search(vectors[5:6], k=3)[0]]
    again.add([NewItem("n/new.png", "n", "sn", (0, 0, 1, 1), "e", "/new.png", vectors[7])])
    assert again.search(vectors[7:8], k=2)[0][0].gallery_id in ("c/7.png", "n/new.png")


@pytest.mark.parametrize("ivf", [False, True])
def test_read_only_open_maps_the_vectors_and_refuses_changes(tmp_path, ivf):
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(500, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = GalleryIndex.create(tmp_path / "idx", {"name": "e"}, 16)
    index.add([NewItem(f"c/{i}.png", "c", f"s{i}", (0, 0, 1, 1), "e", f"/{i}.png", v) for i, v in enumerate(vectors)])
    if ivf:
        index.optimise(force=True)
    expected = [[h.gallery_id for h in hits] for hits in index.search(vectors[:4], k=5)]
    index.close()
    mapped = GalleryIndex.open(tmp_path / "idx", read_only=True)
    assert mapped.backend.read_only and mapped.info()["vector_index"].startswith("IVF" if ivf else "flat")
    assert [[h.gallery_id for h in hits] for hits in mapped.search(vectors[:4], k=5)] == expected
    with pytest.raises(ValueError, match="read-only"):
        mapped.add([NewItem("n/x.png", "n", "sx", (0, 0, 1, 1), "e", "/x.png", vectors[0])])


def test_records_and_thumbs_of_more_ids_than_one_sql_statement_takes(tmp_path):
    import sqlite3

    rng = np.random.default_rng(7)
    n = 2_000
    index = GalleryIndex.create(tmp_path / "idx", {"name": "e"}, 8)
    index.store.conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)  # as SQLite builds before 3.32 have it
    vectors = rng.normal(size=(n, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index.add([NewItem(f"c/{i}.png", "c", f"s{i}", (0, 0, 1, 1), "e", "", v) for i, v in enumerate(vectors)],
              thumbs={f"c/{i}.png": b"png%d" % i for i in range(n)})
    ids = [r.id for r in index.records()]
    assert len(index.store.records(ids)) == n
    assert len(index.thumbs(f"c/{i}.png" for i in range(n))) == n and index.thumbs(["c/3.png"]) == {"c/3.png": b"png3"}


def test_indexing_hands_on_what_it_made_of_a_decoded_image_not_the_image(gallery_dir):
    """A decoded gallery image can be 2,047 px of RGBA (16 MB), and many wait for their turn to be
    embedded: what waits is what the decoding thread made of it."""
    from semcopy_lib.app.indexing import _Prefetch
    from semcopy_lib.data import scan_folder

    files = scan_folder(gallery_dir)[:3]
    prefetch = _Prefetch(files, lambda image: image.size, ahead=3)
    prefetch.top_up(3)
    got = []
    while prefetch.running:
        got += prefetch.finished()
    prefetch.close()
    assert sorted(position for position, *_ in got) == [0, 1, 2]
    assert all(error is None and max(size) == 256 for _, _, error, size in got)  # the gallery's 256-px photos


def test_records_read_before_another_connection_writes_are_not_served_after_it(tmp_path):
    """Records are kept in memory between searches, but never past a write (here another process's)."""
    from semcopy_lib.index.store import MetadataStore

    rng = np.random.default_rng(5)
    mine, theirs = MetadataStore(tmp_path / "m.sqlite"), MetadataStore(tmp_path / "m.sqlite")
    added, _ = mine.write(items(unit(rng, 3)))
    assert [r.gallery_id for r in mine.records(added).values()] == ["c/0.png", "c/1.png", "c/2.png"]
    new, removed = theirs.write(items(unit(rng, 1), prefix="d"), remove_gallery_ids=["c/1.png"])
    assert removed == [added[1]]
    got = mine.records(added + new)
    assert sorted(r.gallery_id for r in got.values()) == ["c/0.png", "c/2.png", "d/0.png"]
    assert got[new[0]].box == (0, 0, 10, 10) and got[added[0]].label == "c"


def test_an_index_written_before_parts_only_views_is_read_and_upgraded(tmp_path):
    """An items table without the ``parts_only`` column: read as whole-image views, the column added on open."""
    import sqlite3

    from semcopy_lib.index.store import MetadataStore

    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, gallery_id TEXT NOT NULL, label TEXT NOT NULL, "
                "sha256 TEXT NOT NULL, box TEXT NOT NULL, encoder TEXT NOT NULL, source TEXT NOT NULL, vector BLOB NOT NULL)")
    old.execute("INSERT INTO items (gallery_id, label, sha256, box, encoder, source, vector) VALUES (?, ?, ?, ?, ?, ?, ?)",
                ("c/0.png", "c", "s0", "[0, 0, 10, 10]", "fake", "/x/0.png", np.zeros(DIM, np.float32).tobytes()))
    old.commit()
    old.close()
    store = MetadataStore(path)
    [record] = store.all_records()
    assert (record.gallery_id, record.parts_only) == ("c/0.png", False)
    [new], _ = store.write([NewItem("c/1.png", "c", "s1", (2, 3, 4, 5), "fake", "", np.ones(DIM, np.float32), True)])
    assert store.records([new])[new].parts_only and not store.records([record.id])[record.id].parts_only


def test_a_whole_image_search_passes_over_the_views_kept_for_parts(index):
    """a/ has a canvas view and a view for parts only; the query is that second view: a part finds a/ at
    1.0 through it, a whole image finds b/ first (cos 0.8) and a/ only through its canvas (cos 0.6)."""
    q = np.array([1, 0, 0, 0, 0, 0, 0, 0], np.float32)
    canvas = np.array([0.6, 0.8, 0, 0, 0, 0, 0, 0], np.float32)
    other = np.array([0.8, 0, 0.6, 0, 0, 0, 0, 0], np.float32)
    index.add([NewItem("a/x.png", "a", "sa", (0, 0, 100, 100), "fake", "", canvas),
               NewItem("a/x.png", "a", "sa", (20, 30, 40, 50), "fake", "", q, parts_only=True),
               NewItem("b/y.png", "b", "sb", (0, 0, 100, 100), "fake", "", other)])
    part = index.search(q[None], k=2)[0]
    assert [(h.gallery_id, round(h.score, 4), h.gallery_box) for h in part] == [
        ("a/x.png", 1.0, (20, 30, 40, 50)), ("b/y.png", 0.8, (0, 0, 100, 100))]
    whole = index.search(q[None], k=2, whole=True)[0]
    assert [(h.gallery_id, round(h.score, 4)) for h in whole] == [("b/y.png", 0.8), ("a/x.png", 0.6)]


def test_the_shrunk_views_are_searched_by_the_small_parts_only(index, tmp_path):
    """a/ has a canvas view (cos 0.6 to the query) and a shrunk view equal to the query (stored as
    ``parts_only`` 2); b/ is at 0.8. Only a query row flagged small finds a/ through its shrunk view; the
    others, whole or not, find it through its canvas; a mixed batch is filtered row by row."""
    q = np.array([1, 0, 0, 0, 0, 0, 0, 0], np.float32)
    canvas = np.array([0.6, 0.8, 0, 0, 0, 0, 0, 0], np.float32)
    other = np.array([0.8, 0, 0.6, 0, 0, 0, 0, 0], np.float32)
    index.add([NewItem("a/x.png", "a", "sa", (0, 0, 100, 100), "fake", "", canvas),
               NewItem("a/x.png", "a", "sa", (20, 30, 40, 50), "fake", "", q, parts_only=True, small=True),
               NewItem("b/y.png", "b", "sb", (0, 0, 100, 100), "fake", "", other)])
    small = [r for r in index.records() if r.small]
    assert [(r.gallery_id, r.box, r.parts_only) for r in small] == [("a/x.png", (20, 30, 40, 50), True)]
    found = index.search(np.stack([q, q]), k=2, small=[True, False])
    assert [[(h.gallery_id, round(h.score, 4)) for h in hits] for hits in found] == [
        [("a/x.png", 1.0), ("b/y.png", 0.8)], [("b/y.png", 0.8), ("a/x.png", 0.6)]]
    assert found[0][0].gallery_box == (20, 30, 40, 50)
    for hits in (index.search(q[None], k=2)[0], index.search(q[None], k=2, whole=True, small=[True])[0]):
        assert [(h.gallery_id, round(h.score, 4)) for h in hits] == [("b/y.png", 0.8), ("a/x.png", 0.6)]


def test_a_small_view_of_each_picture_is_indexed_unless_the_settings_say_0(gallery_dir, tmp_path):
    """With ``pictures.small`` 64 (the default): a 96 x 72 photo on a transparent 400 x 400 canvas at
    (150, 200) gets one more vector, for small parts: its drawing trimmed and shrunk to 64 x 48 (the
    encoder's vector of that picture, its box the drawing's); an opaque 300 x 150 picture gets its whole
    shrunk to 64 x 32. With 0: none; the setting turned on later, the next pass over the files gives each
    its shrunk view beside its other vectors, once."""
    from dataclasses import replace

    from PIL import Image

    from semcopy_lib.app import build_index, index_files
    from semcopy_lib.app.indexing import encoder_for_index, query_config
    from semcopy_lib.data import scan_images

    gallery = tmp_path / "gallery"
    gallery.mkdir()
    photo = Image.open(gallery_dir / "animals" / "img03.png").convert("RGB").resize((96, 72))
    canvas = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
    canvas.paste(photo, (150, 200))
    canvas.save(gallery / "sticker.png")
    wide = Image.open(gallery_dir / "animals" / "img06.png").convert("RGB").resize((300, 150))
    wide.save(gallery / "wide.png")
    index, _ = build_index(gallery, tmp_path / "idx", progress=False)
    assert query_config(index).pictures.small == 64
    encoder = encoder_for_index(index)
    plain = GalleryIndex.create(tmp_path / "plain", encoder.config.to_dict(), encoder.dim, root=gallery)
    config = query_config(plain)
    plain.set_query(replace(config, pictures=replace(config.pictures, small=0)).to_dict())
    index_files(plain, scan_images(gallery), encoder, batch_size=4)
    assert len(plain.records()) == len(index.records()) - 2 and not any(r.small for r in plain.records())
    small = sorted((r.gallery_id, r.box, r.parts_only, r.id) for r in index.records() if r.small)
    assert [row[:3] for row in small] == [("sticker.png", (150, 200, 96, 72), True), ("wide.png", (0, 0, 300, 150), True)]
    stored = {i: v for ids, vs in index.store.iter_vectors(index.dim) for i, v in zip(ids.tolist(), vs)}
    vectors = np.stack([stored[row[3]] for row in small])
    want = encoder.embed([photo.resize((64, 48), Image.LANCZOS), wide.resize((64, 32), Image.LANCZOS)])
    np.testing.assert_allclose(vectors, want, atol=1e-4)

    # the setting turned on later: the next pass over the same files gives each its shrunk view, and
    # leaves its other vectors as they were
    before = {i: v for ids, vs in plain.store.iter_vectors(plain.dim) for i, v in zip(ids.tolist(), vs)}
    plain.set_query(config.to_dict())
    report = index_files(plain, scan_images(gallery), encoder, batch_size=4)
    assert (sorted(report.unchanged), report.added, report.replaced) == (["sticker.png", "wide.png"], [], [])
    assert sorted(report.small_views) == ["sticker.png", "wide.png"]
    after = {i: v for ids, vs in plain.store.iter_vectors(plain.dim) for i, v in zip(ids.tolist(), vs)}
    assert all(np.array_equal(after[i], v) for i, v in before.items()) and len(after) == len(before) + 2
    given = sorted((r.gallery_id, r.box, r.parts_only, r.id) for r in plain.records() if r.small)
    assert [row[:3] for row in given] == [row[:3] for row in small]
    np.testing.assert_allclose(np.stack([after[row[3]] for row in given]), want, atol=1e-4)
    assert [[h.gallery_id for h in hits] for hits in plain.search(want, k=1, small=[True, True])] == [["sticker.png"], ["wide.png"]]
    assert index_files(plain, scan_images(gallery), encoder, batch_size=4).small_views == []  # once
    plain.close()


def test_a_drawing_on_a_large_transparent_canvas_is_indexed_trimmed_for_parts_only(gallery_dir, tmp_path):
    """A 96 x 72 photo on a transparent 400 x 400 canvas at (150, 200): besides the canvas's views, one
    vector of the drawing trimmed to (150, 200, 96, 72), seen by region searches only; not a picture
    the canvas holds (duplicates compare canvases whole); the opaque photo gets none."""
    from PIL import Image

    from semcopy_lib.app import build_index
    from semcopy_lib.app.dedup import held_pictures
    from semcopy_lib.app.indexing import encoder_for_index
    from semcopy_lib.data import to_rgb

    gallery = tmp_path / "gallery"
    gallery.mkdir()
    photo = Image.open(gallery_dir / "animals" / "img03.png").convert("RGB").resize((96, 72))
    photo.save(gallery / "photo.png")
    canvas = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
    canvas.paste(photo, (150, 200))
    canvas.save(gallery / "sticker.png")
    index, _ = build_index(gallery, tmp_path / "idx", progress=False)
    parts = [r for r in index.records() if r.parts_only and not r.small]
    assert [(r.gallery_id, r.box) for r in parts] == [("sticker.png", (150, 200, 96, 72))]
    assert held_pictures(index.records()) == {}
    encoder = encoder_for_index(index)
    query = encoder.embed([to_rgb(canvas.crop((150, 200, 246, 272)))])
    # the photo's own view holds the same pixels: the two tie at 1.0 in either order (float sums differ by CPU)
    [part] = index.search(query, k=2)
    assert sorted((h.gallery_id, h.gallery_box) for h in part) == [("photo.png", (0, 0, 96, 72)),
                                                                    ("sticker.png", (150, 200, 96, 72))]
    assert [h.score for h in part] == pytest.approx([1.0, 1.0], abs=1e-4)
    [whole] = index.search(query, k=2, whole=True)  # the photo itself first, the canvas through its own views
    assert [h.gallery_id for h in whole] == ["photo.png", "sticker.png"] and whole[1].score < 0.9
    # the service searches a query's whole image so
    from semcopy_lib.app.service import SearchService

    canvas.crop((150, 200, 246, 272)).convert("RGB").save(tmp_path / "query.png")
    [result] = SearchService(index.directory).search([tmp_path / "query.png"], k=2, regions=False)
    assert [(h.gallery_id, h.region_kind) for h in result.hits] == [("photo.png", "whole"), ("sticker.png", "whole")]
    assert result.hits[1].score == pytest.approx(whole[1].score, abs=1e-3)


def test_a_whole_search_fetches_further_when_its_first_vectors_are_all_for_parts(index):
    """Ten images whose parts-only vectors lie at cosine 0.99 to the query (their canvases at 0) and z's
    canvas at 0.5: the first vectors fetched for k = 1 are all parts-only; a whole search still finds z."""
    q = np.eye(DIM, dtype=np.float32)[0]
    near = np.array([0.99, np.sqrt(1 - 0.99 ** 2), 0, 0, 0, 0, 0, 0], np.float32)
    far = np.eye(DIM, dtype=np.float32)[2]
    half = np.array([0.5, 0, 0, np.sqrt(0.75), 0, 0, 0, 0], np.float32)
    index.add([NewItem(f"x/{i}.png", "x", f"s{i}", (0, 0, 9, 9), "fake", "", v, parts_only=parts)
               for i in range(10) for v, parts in ((far, False), (near, True))]
              + [NewItem("z/z.png", "z", "sz", (0, 0, 9, 9), "fake", "", half)])
    [hits] = index.search(q[None], k=1, whole=True)
    assert [(h.gallery_id, round(h.score, 4)) for h in hits] == [("z/z.png", 0.5)]
    [hits] = index.search(q[None], k=3, whole=True)
    assert [(h.gallery_id, round(h.score, 4)) for h in hits][0] == ("z/z.png", 0.5) and len(hits) == 3
