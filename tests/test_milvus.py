"""The milvus index backend on Milvus Lite (embedded: started by the test itself, in a temporary folder)."""

import json

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="pip install 'semcopy[milvus]'")

from semcopy_lib.index import GalleryIndex, NewItem  # noqa: E402
from semcopy_lib.index.backends import FaissBackend, MilvusBackend  # noqa: E402


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
