"""The milvus index backend on Milvus Lite (embedded: started by the test itself, in a temporary folder)."""

import json

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="pip install 'semcopy[milvus]'")

from semcopy_lib.index import GalleryIndex, NewItem  # noqa: E402
from semcopy_lib.index.backends import FaissBackend, MilvusBackend, StoreInUse  # noqa: E402


def unit(rng, n, d=16):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_milvus_backend_answers_like_faiss(tmp_path):
    rng = np.random.default_rng(0)
    vectors, ids = unit(rng, 200), np.arange(200) * 2 + 1
    milvus, faiss = MilvusBackend(16, path=tmp_path / MilvusBackend.FILE), FaissBackend(16)
    for backend in (milvus, faiss):
        backend.add(ids, vectors)
        backend.remove(ids[:3])
    queries = unit(rng, 5)
    (ms, mi), (fs, fi) = milvus.search(queries, 7), faiss.search(queries, 7)
    assert (mi == fi).all() and np.allclose(ms, fs, atol=1e-4)
    assert milvus.count == 197
    np.testing.assert_allclose(milvus.reconstruct(ids[3:5]), vectors[3:5], atol=1e-6)
    milvus.close()


def test_gallery_index_on_milvus_persists_and_reopens(tmp_path):
    rng = np.random.default_rng(1)
    vectors = unit(rng, 30)
    index = GalleryIndex.create(tmp_path / "idx", {"name": "e"}, 16, backend="milvus")
    index.add([NewItem(f"c/{i}.png", "c", f"s{i}", (0, 0, 1, 1), "e", f"/{i}.png", v) for i, v in enumerate(vectors)])
    assert index.remove(["c/3.png"]) == []
    index.close()
    again = GalleryIndex.open(tmp_path / "idx")
    assert again.info()["backend"] == "milvus" and again.backend.count == 29 and len(again) == 29
    [hits] = again.search(vectors[7:8], k=2)
    assert hits[0].gallery_id == "c/7.png" and hits[0].score == pytest.approx(1.0, abs=1e-4)
    again.close()


def test_cli_builds_and_searches_a_milvus_index(gallery_dir, tmp_path, capsys):
    from semcopy_lib.cli import main

    index = tmp_path / "idx"
    assert main(["index", "build", str(gallery_dir), "--index", str(index), "--backend", "milvus"]) == 0
    assert (index / MilvusBackend.FILE).exists()
    query = gallery_dir / "food" / "img04.png"
    capsys.readouterr()
    assert main(["search", "--index", str(index), "--json", "-k", "1", "--no-regions", str(query)]) == 0
    assert json.loads(capsys.readouterr().out)["hits"][0]["id"] == "food/img04.png"


def test_bench_speed_runs_against_milvus(gallery_dir, capsys):
    from semcopy_lib.cli import main

    assert main(["bench", "speed", str(gallery_dir), "--quick", "--backend", "milvus", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["backend"] == "milvus" and row["query_gallery_vectors"] == 500 and row["query_p50_ms"] > 0
    # the scale figures are Milvus's too, not FAISS's
    assert row["search_1m_index"].startswith("Milvus Lite, ") and row["search_1m_vectors"] == 5_000


def test_the_scale_bench_streams_into_milvus_and_scores_it_against_exact_search():
    from semcopy_lib.eval import speed

    rng = np.random.default_rng(0)
    real = rng.standard_normal((50, 16)).astype(np.float32)
    real /= np.linalg.norm(real, axis=1, keepdims=True)
    row = speed._million(real, 3_000, nlist=16, queries=20, backend="milvus")
    assert row["search_1m_vectors"] == 3_000 and row["search_1m_index"] == "Milvus Lite, AUTOINDEX"
    # every query's top 20 is the float32 scan's of the same streamed vectors
    assert row["search_1m_recall_at_20"] == 1.0
    assert row["search_1m_index_bytes"] > 3_000 * 16 * 4 * 0.5


def _index(folder, vectors, name):
    index = GalleryIndex.create(folder, {"name": "e"}, 16, backend="milvus")
    index.add([NewItem(f"{name}/{i}.png", name, f"{name}{i}", (0, 0, 1, 1), "e", "", v) for i, v in enumerate(vectors)])
    return index


def test_two_indexes_of_one_folder_name_on_one_server_keep_their_own_vectors(tmp_path, monkeypatch):
    # one Milvus Lite file as the shared server: the code path of $SEMCOPY_MILVUS_URI
    monkeypatch.setenv(MilvusBackend.URI_ENV, str(tmp_path / "server.db"))
    rng = np.random.default_rng(3)
    a_vectors, b_vectors = unit(rng, 12), unit(rng, 7)
    a = _index(tmp_path / "a" / "idx", a_vectors, "a")
    b = _index(tmp_path / "b" / "idx", b_vectors, "b")  # the same folder name, once dropped a's collection
    assert a.manifest["name"] != b.manifest["name"]
    for index, vectors, name in ((a, a_vectors, "a"), (b, b_vectors, "b")):
        index.close()
        again = GalleryIndex.open(index.directory)
        assert len(again) == again.backend.count == len(vectors)
        assert again.search(vectors[5:6], k=1)[0][0].gallery_id == f"{name}/5.png"
        again.close()


def test_a_copied_index_gets_its_own_collection_and_never_drops_the_original(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv(MilvusBackend.URI_ENV, str(tmp_path / "server.db"))
    vectors = unit(np.random.default_rng(4), 9)
    original = _index(tmp_path / "idx", vectors, "c")
    original.close()
    shutil.copytree(tmp_path / "idx", tmp_path / "copy")
    copy = GalleryIndex.open(tmp_path / "copy")  # its manifest names the original's collection
    assert copy.manifest["name"] != original.manifest["name"]
    assert json.loads((tmp_path / "copy" / "manifest.json").read_text())["name"] == copy.manifest["name"]
    copy.remove(["c/0.png"])
    copy.close()
    again = GalleryIndex.open(tmp_path / "idx")
    assert again.backend.count == 9 and again.manifest["name"] == original.manifest["name"]
    again.close()
    with pytest.raises(StoreInUse):  # nor is it opened as a fresh store (which would drop it)
        MilvusBackend(16, path=tmp_path / "copy" / MilvusBackend.FILE, name=original.manifest["name"])
