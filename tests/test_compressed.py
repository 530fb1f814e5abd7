"""The compressed index (PCA + IVF-PQ short list, re-ranked on memory-mapped 8-bit vectors) and the
synthetic vectors that the ten-million bench streams through it."""

import numpy as np
import pytest

from semcopy_lib.eval import speed
from semcopy_lib.index.compressed import CODES_FILE, CompressedIndex, spec_for


def _unit(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def built(tmp_path):
    rng = np.random.default_rng(0)
    base = _unit(rng, 3000, 64)
    index = CompressedIndex(64, "PCA32,IVF16,PQ16x4fs", shortlist=3000, directory=tmp_path / "c")
    index.train(base)
    for s in range(0, 3000, 1000):  # added in chunks, as the bench streams them
        index.add(base[s:s + 1000])
    index.nprobe = 16  # every list: the short list is the whole index
    index.save()
    return index, base


def test_a_full_short_list_reranks_to_the_exact_answer(built):
    index, base = built
    q = base[[7, 1500, 2999]]
    scores, ids = index.search(q, 5)
    exact = np.argsort(-(q @ base.T), axis=1)[:, :5]
    assert ids[:, 0].tolist() == [7, 1500, 2999]  # a stored vector finds itself first
    assert (ids == exact).mean() >= 0.9  # 8-bit ties aside, the exact order
    # scores of the 8-bit vectors: each dimension off by at most half a step, vdiff / 255 / 2
    _, vdiff = index._range()
    bound = np.abs(q) @ (vdiff / 510)  # (3,)
    assert (np.abs(scores - np.take_along_axis(q @ base.T, ids, 1)) <= bound[:, None] + 1e-6).all()


def test_a_saved_index_loads_mapped_and_answers_the_same(built, tmp_path):
    index, base = built
    again = CompressedIndex.load(tmp_path / "c")
    assert again.count == 3000 and again.nprobe == 16 and again.shortlist == 3000
    assert isinstance(again._mapped(), np.memmap)  # the codes are mapped, not read
    np.testing.assert_array_equal(again.search(base[:4], 3)[1], index.search(base[:4], 3)[1])
    assert again.bytes_mapped() == 3000 * 64


def test_a_short_codes_file_is_refused_naming_it(built, tmp_path):
    codes = tmp_path / "c" / CODES_FILE
    codes.write_bytes(codes.read_bytes()[:-64])  # one vector lost
    with pytest.raises(ValueError, match=f"{CODES_FILE}: 191936 bytes, 3000 vectors of 64 expected"):
        CompressedIndex.load(tmp_path / "c")


def test_the_short_list_spec_follows_the_size():
    assert spec_for(10_000_000, 1280) == "PCA256,IVF4096,PQ128x4fs"  # lists capped
    assert spec_for(1_000_000, 1280) == "PCA256,IVF4000,PQ128x4fs"  # 4 sqrt(n)
    assert spec_for(20_000, 64) == "PCA64,IVF565,PQ32x4fs"  # small vectors: PQ over pairs of dimensions


def test_spectral_noise_follows_the_real_spectrum_with_the_isotropic_energy():
    rng = np.random.default_rng(0)
    # real vectors that vary along 3 directions of 64
    real = np.zeros((300, 64), np.float32)
    real[:, :3] = rng.standard_normal((300, 3)) * [3.0, 2.0, 1.0]
    real[:, 10] = 5.0
    real /= np.linalg.norm(real, axis=1, keepdims=True)
    noise = speed.SpectralNoise(real).draw(50_000, np.random.default_rng(1))
    energy = (noise ** 2).sum(1).mean()
    assert abs(energy - speed.SYNTH_NOISE ** 2 * 64) < 0.02 * speed.SYNTH_NOISE ** 2 * 64
    strong = (noise[:, :3] ** 2).sum(1).mean() / energy
    assert strong > 0.8  # isotropic noise would put 3/64 = 0.05 of it there


def test_isotropic_synthetic_vectors_are_the_ones_drawn_before_streaming():
    """The dedup bench and the 1M figures keep their vectors: the stream draws what the array did."""
    rng0 = np.random.default_rng(0)
    real = _unit(rng0, 20, 16)
    rng = np.random.default_rng(5)
    before = real[rng.integers(0, 20, 300)] + rng.normal(0, speed.SYNTH_NOISE, (300, 16)).astype(np.float32)
    before /= np.linalg.norm(before, axis=1, keepdims=True)
    np.testing.assert_array_equal(speed.synthetic_vectors(real, 300, seed=5), before)
    with pytest.raises(ValueError, match="synthetic model 'gauss'"):
        next(speed.draw_synthetic(real, 10, model="gauss"))


def test_past_the_sq8_budget_the_bench_streams_into_the_compressed_index(monkeypatch):
    """Past ``SQ8_MAX_BYTES`` the size picks the compressed index; it is built and searched in one
    stream, its setting chosen on tuning queries and reported on held-out ones."""
    import semcopy_lib.index.compressed as compressed

    monkeypatch.setattr(compressed, "SQ8_MAX_BYTES", 20_000 * 64 - 1)
    rng = np.random.default_rng(0)
    real = np.zeros((2000, 64), np.float32)  # real vectors that vary in 8 directions: noise shaped like them
    real[:, :8] = rng.standard_normal((2000, 8))
    real /= np.linalg.norm(real, axis=1, keepdims=True)
    row = speed._million(real, 20_000, nlist=64, queries=40, model="spectrum")
    assert row["search_1m_index"] == "PCA64,IVF565,PQ32x4fs, re-ranked (8-bit)"
    assert row["search_1m_vectors"] == 20_000 and row["search_1m_synthetic"] == "spectrum"
    assert row["search_1m_mapped_bytes"] == 20_000 * 64
    # the cheapest setting that reaches 0.95 on the tuning queries
    assert row["search_1m_recall_at_20_tuning"] >= 0.95
    assert row["search_1m_shortlist"] in CompressedIndex.SHORTLISTS and row["search_1m_nprobe"] in speed.NPROBES
    assert 0 < row["search_1m_recall_at_20"] <= 1 and row["search_1m_index_bytes"] > 0


def test_bench_speed_passes_the_scale_options_on(monkeypatch, tmp_path, capsys):
    from semcopy_lib.cli import main

    seen = {}
    monkeypatch.setattr(speed, "run_speed_bench", lambda images_dir, **kw: seen.update(kw) or {"ok": 1})
    assert main(["bench", "speed", str(tmp_path), "--million", "5000", "--synthetic", "spectrum",
                 "--compressed", "--json"]) == 0
    assert seen["million"] == 5000 and seen["synthetic"] == "spectrum" and seen["compressed"] is True
    assert main(["bench", "speed", str(tmp_path), "--json"]) == 0
    assert seen["synthetic"] == "noise" and seen["compressed"] is False  # the defaults


def test_a_disk_without_room_for_the_codes_is_one_line_before_any_work(monkeypatch, tmp_path, capsys):
    """10M x 1280 codes are 12.8 GB: the bench says so before minutes of ingestion, naming the folder."""
    import shutil
    from collections import namedtuple

    from semcopy_lib.cli import main

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(20e9, 18e9, 2e9))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    from conftest import pattern_image

    pattern_image(0).save(tmp_path / "one.png")  # a folder with a picture: no other complaint comes first
    assert main(["bench", "speed", str(tmp_path), "--million", "10000000", "--json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"semcopy: error: {tmp_path}: 2.0 GB free, the re-ranking file of 10,000,000 vectors needs "
                   "12.8 GB (set TMPDIR to a larger disk)"]


# -- the compressed index as a gallery index's backend ------------------------------------------------
DIM = 64


def _clustered(rng, n):
    """Unit vectors around 40 centres (as a gallery's classes are), so that neighbours mean something."""
    centres = _unit(rng, 40, DIM)
    x = centres[rng.integers(0, 40, n)] + 0.15 * rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _items(vectors, start=0):
    from semcopy_lib.index import NewItem

    return [NewItem(f"c/{start + i}.png", "c", f"sha{start + i}", (0, 0, 8, 8), "toy", "/x", v)
            for i, v in enumerate(vectors)]


@pytest.fixture
def past_budget(tmp_path, monkeypatch):
    """An index of 1,500 vectors made compressed by ``optimise`` under a budget of 1,000 of them."""
    from semcopy_lib.index import GalleryIndex, compressed

    base = _clustered(np.random.default_rng(1), 1500)
    index = GalleryIndex.create(tmp_path / "idx", {"name": "toy"}, DIM)
    index.add(_items(base))
    monkeypatch.setattr(compressed, "SQ8_MAX_BYTES", 1000 * DIM)
    report = index.optimise()
    return index, base, report


def test_past_the_sq8_budget_a_gallery_index_becomes_compressed_and_finds_what_it_holds(past_budget, tmp_path):
    index, base, report = past_budget
    assert index.manifest["backend"] == "compressed" and index.manifest["vector_index"] == report
    assert not (tmp_path / "idx" / "vectors.faiss").exists()  # the FAISS file gave way
    assert set(report) == {"index", "shortlist", "nprobe", "recall_at_k_tuning", "recall_at_k", "k", "vectors",
                           "bytes", "mapped_bytes"}
    assert report["vectors"] == 1500 and report["mapped_bytes"] == 1500 * DIM
    assert report["recall_at_k_tuning"] >= 0.95
    assert index.info()["vector_index"].startswith(report["index"].split(",")[0])
    hits = index.search(base[::100], k=3)
    assert [h[0].gallery_id for h in hits] == [f"c/{i}.png" for i in range(0, 1500, 100)]
    # the 8-bit scores stay within half a quantisation step a dimension of the float32 ones
    _, vdiff = index.backend.index._range()
    assert all(abs(h[0].score - 1.0) <= float(np.abs(q) @ (vdiff / 510)) + 1e-6 for h, q in zip(hits, base[::100]))


def test_a_compressed_gallery_index_adds_removes_and_reopens(past_budget, tmp_path):
    from semcopy_lib.index import GalleryIndex
    from semcopy_lib.index.verify import verify

    index, base, _ = past_budget
    assert index.remove(["c/7.png"]) == []
    assert "c/7.png" not in [h.gallery_id for h in index.search(base[7:8], k=5)[0]]
    fresh = _clustered(np.random.default_rng(2), 3)
    index.add(_items(fresh, start=5000))
    assert index.backend.count == 1502 and len(index) == 1502
    assert [h[0].gallery_id for h in index.search(fresh, k=1)] == ["c/5000.png", "c/5001.png", "c/5002.png"]
    vid = {r.gallery_id: r.id for r in index.records()}["c/1.png"]
    np.testing.assert_allclose(index.backend.reconstruct(np.array([vid])), base[1:2], atol=0.02)  # 8-bit codes
    index.close()
    for again in (GalleryIndex.open(tmp_path / "idx"), GalleryIndex.open(tmp_path / "idx", read_only=True)):
        assert type(again.backend).__name__ == "CompressedBackend" and again.backend.count == 1502
        assert [h[0].gallery_id for h in again.search(np.concatenate([fresh[:1], base[9:10]]), k=1)] == \
            ["c/5000.png", "c/9.png"]
        again.close()
    assert verify(tmp_path / "idx", check_files=False).ok


def test_a_compressed_index_lost_or_behind_is_rebuilt_from_sqlite(past_budget, tmp_path):
    import shutil

    from semcopy_lib.index import GalleryIndex

    index, base, _ = past_budget
    index.close()
    shutil.rmtree(tmp_path / "idx" / "vectors.compressed")
    again = GalleryIndex.open(tmp_path / "idx")
    assert again.manifest["backend"] == "compressed" and again.backend.count == 1500
    assert (tmp_path / "idx" / "vectors.compressed" / "ids.npy").exists()  # rebuilt and saved
    assert again.search(base[42:43], k=1)[0][0].gallery_id == "c/42.png"


def test_a_reader_searches_what_was_saved_until_the_writer_saves_again(past_budget, tmp_path):
    from semcopy_lib.index import GalleryIndex

    writer, base, _ = past_budget
    reader = GalleryIndex.open(tmp_path / "idx", read_only=True)
    fresh = _clustered(np.random.default_rng(3), 1)
    writer.add(_items(fresh, start=9000), save=False)  # in SQLite, not yet in the saved index
    assert reader.search(fresh, k=1)[0][0].gallery_id != "c/9000.png"
    assert reader.backend.count == 1500  # the saved one, not a rebuild
    writer.save()
    assert reader.search(fresh, k=1)[0][0].gallery_id == "c/9000.png"
    assert reader.backend.count == 1501


def test_a_growing_build_turns_a_flat_index_ivf_then_compressed_as_memory_needs(tmp_path, monkeypatch):
    from semcopy_lib.index import GalleryIndex, compressed

    monkeypatch.setattr(compressed, "SQ8_MAX_BYTES", 1200 * DIM)
    rng = np.random.default_rng(4)
    index = GalleryIndex.create(tmp_path / "idx", {"name": "toy"}, DIM)
    index.add(_items(_clustered(rng, 250)))
    assert index.optimise(growing=True) is None and index.backend.kind == "flat"  # 250 x 64 x 4 bytes: under
    index.add(_items(_clustered(rng, 100), start=250))
    assert index.optimise(growing=True)["index"].startswith("IVF")  # float32 past the budget
    index.add(_items(_clustered(rng, 900), start=350))
    assert index.optimise(growing=True)["index"].startswith("PCA")  # 8-bit past it: compressed
    assert index.manifest["backend"] == "compressed" and index.backend.count == 1250


def test_index_build_checks_the_index_kind_after_every_batch(gallery_dir, tmp_path, monkeypatch):
    from semcopy_lib.app import build_index
    from semcopy_lib.index import GalleryIndex

    calls = []
    original = GalleryIndex.optimise
    monkeypatch.setattr(GalleryIndex, "optimise", lambda self, force=False, growing=False:
                        calls.append(growing) or original(self, force, growing))
    build_index(gallery_dir, tmp_path / "idx", batch_size=4, progress=False)
    assert calls[-1] is False and calls[:-1] == [True] * (len(calls) - 1) and len(calls) >= 4  # 12 images


def test_no_gallery_index_is_created_compressed(tmp_path):
    from semcopy_lib.index import GalleryIndex, IndexDirError

    with pytest.raises(IndexDirError, match="unknown index backend 'compressed'; known: faiss, milvus"):
        GalleryIndex.create(tmp_path / "idx", {"name": "toy"}, DIM, backend="compressed")


def test_a_reader_keeps_the_index_it_has_while_a_save_is_half_written(past_budget, tmp_path):
    from semcopy_lib.index import GalleryIndex

    writer, base, _ = past_budget
    reader = GalleryIndex.open(tmp_path / "idx", read_only=True)
    fresh = _clustered(np.random.default_rng(5), 1)
    writer.add(_items(fresh, start=9000), save=False)
    ids = tmp_path / "idx" / "vectors.compressed" / "ids.npy"
    np.save(ids, np.append(np.load(ids), 123456))  # half a save: the ids written, the codes not yet
    assert reader.search(base[3:4], k=1)[0][0].gallery_id == "c/3.png"  # the index it had answers
    writer.save()
    assert reader.search(fresh, k=1)[0][0].gallery_id == "c/9000.png"
