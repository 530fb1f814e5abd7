"""Vector search backends behind one interface (after FiftyOne brain's similarity backends).

A backend holds (id, vector) pairs and answers inner-product top-k queries; the metadata lives in
:mod:`semcopy_lib.index.store`. Backends are chosen by name: ``BACKENDS["faiss"]``.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from semcopy_lib.index.flat import FlatScan, recall_at_k


class VectorBackend(ABC):
    """Inner-product search over L2-normalised vectors with stable int64 ids.

    ``FILE`` is the backend's file name inside an index directory; ``path`` (that file) is given to
    backends that keep their data there as they go (a database), and ignored by in-memory ones;
    ``name`` is the index's own name, for a backend whose store other indexes share (a server).
    """

    FILE = "vectors.bin"

    def __init__(self, dim: int, path: Path | None = None, name: str | None = None):
        self.dim = dim

    @abstractmethod
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """ids: (N,) int64; vectors: (N, D) float32, L2-normalised."""

    @abstractmethod
    def remove(self, ids: np.ndarray) -> None:
        """Drop these ids (unknown ids are ignored)."""

    @abstractmethod
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """queries: (Q, D) -> (scores (Q, k) float32, ids (Q, k) int64); missing slots have id -1."""

    @abstractmethod
    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """(N,) ids -> (N, D) stored vectors."""

    @property
    @abstractmethod
    def count(self) -> int: ...

    @abstractmethod
    def save(self, path: Path) -> None:
        """Write atomically to ``path``."""

    @classmethod
    @abstractmethod
    def load(cls, path: Path, dim: int, read_only: bool = False, name: str | None = None) -> "VectorBackend":
        """The backend saved at ``path``; ``read_only`` may map it into memory instead of reading it;
        ``name``: the index's own name, for a backend whose store other indexes share (a Milvus server).

        Raises:
            FileNotFoundError: nothing is saved there (the index rebuilds it from SQLite).
            StoreInUse: the store holds another index's vectors.
        """

    def close(self) -> None:
        """Release what the backend holds outside this process's memory (a client, a file); default none."""

    #: Set by ``load(read_only=True)``: the backend maps its data and refuses changes.
    read_only = False

    def _writable(self) -> None:
        if self.read_only:
            raise ValueError("this index was opened read-only (memory-mapped); open it for writing to change it")


class StoreInUse(ValueError):
    """A shared store (a Milvus collection) belongs to another index: it is neither used nor dropped."""


class FaissBackend(VectorBackend):
    """Exact inner-product search: ``faiss.IndexIDMap2(faiss.IndexFlatIP(D))``.

    A flat index is searched as one matrix product over FAISS's own vector storage (no copy), which
    answers the many vectors of one query (its whole image, subjects and windows) faster than
    ``IndexFlatIP.search``. The product and top-k run in torch (:class:`~semcopy_lib.index.flat.FlatScan`,
    screened in bf16 where the CPU has it), on the thread pool the encoder uses: numpy's OpenBLAS
    threads would still be spinning when the next forward pass starts, and slow it down.
    """

    FILE = "vectors.faiss"

    def __init__(self, dim: int, index=None, path: Path | None = None, name: str | None = None):
        import faiss

        super().__init__(dim)
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._flat: tuple[FlatScan, np.ndarray] | None = None  # a scan of the (N, D) vectors, (N,) ids

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self._writable()
            vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
            self.index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
            self._flat = None  # FAISS may have moved its storage

    def remove(self, ids: np.ndarray) -> None:
        import faiss

        if len(ids):
            self._writable()
            ids = np.ascontiguousarray(ids, dtype=np.int64)
            if isinstance(self.index, faiss.IndexIVF):  # its hashtable direct map takes an explicit id array
                self.index.remove_ids(faiss.IDSelectorArray(len(ids), faiss.swig_ptr(ids)))
            else:
                self.index.remove_ids(ids)
            self._flat = None

    def _flat_view(self) -> tuple[FlatScan, np.ndarray] | None:
        """A scan of the stored (N, D) vectors (not copied) and their ids, when the index is a flat ID map."""
        import faiss

        if self._flat is None and isinstance(self.index, faiss.IndexIDMap2):
            inner = faiss.downcast_index(self.index.index)
            if isinstance(inner, faiss.IndexFlat):
                n = int(inner.ntotal)
                xb = faiss.rev_swig_ptr(inner.get_xb(), n * self.dim).reshape(n, self.dim)
                self._flat = (FlatScan(xb), faiss.vector_to_array(self.index.id_map))
        return self._flat

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        if self.count == 0 or len(queries) == 0:
            return (np.zeros((len(queries), k), np.float32), np.full((len(queries), k), -1, np.int64))
        flat = self._flat_view()
        if flat is None:
            return self.index.search(queries, k)
        scan, ids = flat
        n = min(k, len(ids))
        top_scores, top = scan.search(queries, n)  # best first
        out_scores = np.full((len(queries), k), -np.finfo(np.float32).max, np.float32)
        out_ids = np.full((len(queries), k), -1, np.int64)
        out_scores[:, :n], out_ids[:, :n] = top_scores, ids[top]
        return out_scores, out_ids

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        return np.stack([self.index.reconstruct(int(i)) for i in ids]) if len(ids) else np.zeros((0, self.dim), np.float32)

    @property
    def kind(self) -> str:
        """``"flat"`` (exact) or ``"IVF<nlist>,SQ8 nprobe <p>"``."""
        import faiss

        inner = faiss.downcast_index(self.index.index) if isinstance(self.index, faiss.IndexIDMap2) else self.index
        inner = faiss.downcast_index(inner)
        if isinstance(inner, faiss.IndexIVF):
            return f"IVF{inner.nlist},SQ8 nprobe {inner.nprobe}"
        return "flat"

    def to_ivf(self, nlist: int | None = None, queries: int = 200, k: int = 20, target: float = 0.95,
               seed: int = 0) -> dict:
        """Replace the flat index by ``IVF<nlist>,SQ8`` (1 byte a dimension) trained on the stored vectors.

        ``nprobe`` is the smallest power of two whose recall@k against exact search, on ``queries``
        stored vectors, reaches ``target``. Returns ``{"index", "nlist", "nprobe", "recall_at_k", "k",
        "vectors", "bytes"}``.
        """
        import faiss

        flat = self._flat_view()
        if flat is None:
            raise ValueError(f"the index is already {self.kind}")
        xb, ids = np.array(flat[0].array), np.array(flat[1])
        n = len(ids)
        nlist = nlist or int(max(16, min(65536, 4 * np.sqrt(n))))
        rng = np.random.default_rng(seed)
        ivf = faiss.index_factory(self.dim, f"IVF{nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
        ivf.train(xb[rng.choice(n, min(n, 40 * nlist), replace=False)])
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # reconstruct() and remove_ids() by our ids
        ivf.add_with_ids(xb, ids)  # IVF keeps arbitrary ids itself: no ID map around it
        index = ivf
        q = xb[rng.choice(n, min(n, queries), replace=False)]
        _, exact = self.search(q, k)
        recall, nprobe = 0.0, 1
        while nprobe <= nlist:
            ivf.nprobe = nprobe
            _, found = index.search(q, k)
            recall = recall_at_k(found, exact)
            if recall >= target:
                break
            nprobe *= 2
        ivf.nprobe = min(nprobe, nlist)
        self.index, self._flat = index, None
        return {"index": f"IVF{nlist},SQ8", "nlist": nlist, "nprobe": int(ivf.nprobe), "recall_at_k": round(recall, 4),
                "k": k, "vectors": n, "bytes": int(faiss.serialize_index(index).nbytes)}

    @property
    def count(self) -> int:
        return int(self.index.ntotal)

    def save(self, path: Path) -> None:
        import faiss

        tmp = Path(f"{path}.tmp")
        faiss.write_index(self.index, str(tmp))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, dim: int, read_only: bool = False, name: str | None = None) -> "FaissBackend":
        """Read ``path``; ``read_only`` memory-maps an IVF index's lists (a big index opens at once and
        processes searching it share its pages) and refuses changes."""
        import faiss

        if not Path(path).exists():
            raise FileNotFoundError(path)

        flags = 0
        if read_only:
            with open(path, "rb") as f:
                flat = f.read(4) in (b"IxM2", b"IxMp")
            # an IVF index maps its inverted lists; a flat one (<= FLAT_MAX vectors) is read: scanning
            # mapped pages is slower
            flags = 0 if flat else faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY
        index = faiss.read_index(str(path), flags)
        if index.d != dim:
            raise ValueError(f"{path}: vectors have dimension {index.d}, the manifest says {dim}")
        backend = cls(dim, index)
        backend.read_only = read_only
        return backend


class MilvusBackend(VectorBackend):
    """Milvus through ``pymilvus.MilvusClient``: Milvus Lite in the index directory (``vectors.milvus.db``,
    embedded, nothing to start), or a Milvus server or cluster when ``$SEMCOPY_MILVUS_URI`` is set. Same
    ids, scores (inner product) and answers as :class:`FaissBackend`; Milvus keeps the data itself, so
    :meth:`save` only flushes.

    Each index has its own collection, named by the index (``name``, kept in its manifest). On a server
    the collection records the index folder that made it (property ``semcopy.owner``), and one that
    another folder made is never written to or dropped (:class:`StoreInUse`): two indexes, even of
    the same folder name or one copied from the other, never touch each other's vectors.

    When to switch: one machine holds a flat or IVF FAISS index of tens of millions of vectors; past
    that, or to share one gallery between several servers, run a Milvus cluster (``pip install
    semcopy[milvus]``, set ``SEMCOPY_MILVUS_URI``, build with ``--backend milvus``).
    """

    FILE = "vectors.milvus.db"
    URI_ENV = "SEMCOPY_MILVUS_URI"
    OWNER = "semcopy.owner"
    BATCH = 2000  # rows per insert call

    def __init__(self, dim: int, path: Path | None = None, fresh: bool = True, name: str | None = None):
        import re

        try:
            from pymilvus import MilvusClient
        except ImportError as exc:
            raise ValueError("the milvus backend needs pymilvus and milvus-lite: pip install 'semcopy[milvus]'") from exc
        super().__init__(dim)
        if path is None:
            raise ValueError("the milvus backend keeps its data in the index directory: give its path")
        server = os.environ.get(self.URI_ENV)
        self.client = MilvusClient(server or str(path))
        folder = Path(path).resolve().parent
        # indexes made before names were kept: the folder's name on a server, one collection in Lite
        self.collection = name or (re.sub(r"\W", "_", f"semcopy_{folder.name}") if server else "semcopy")
        exists = self.client.has_collection(self.collection)
        if server and exists:
            owner = self.client.describe_collection(self.collection).get("properties", {}).get(self.OWNER)
            if owner != str(folder):
                self.client.close()
                raise StoreInUse(f"Milvus collection {self.collection} at {server} belongs to "
                                 f"{owner or 'something other than semcopy'}, not to the index at {folder}: left as it is")
        if not fresh and not exists:
            self.client.close()
            raise FileNotFoundError(f"{server or path}: no collection {self.collection}")
        if fresh and exists:
            self.client.drop_collection(self.collection)  # this index's own (checked above)
        if fresh or not exists:
            self.client.create_collection(self.collection, dimension=dim, metric_type="IP", auto_id=False)
            if server:
                self.client.alter_collection_properties(self.collection, properties={self.OWNER: str(folder)})

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        for s in range(0, len(ids), self.BATCH):
            rows = [{"id": int(i), "vector": v.tolist()} for i, v in zip(ids[s:s + self.BATCH], vectors[s:s + self.BATCH])]
            self.client.insert(self.collection, rows)

    def remove(self, ids: np.ndarray) -> None:
        if len(ids):
            self.client.delete(self.collection, ids=[int(i) for i in ids])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.asarray(queries, dtype=np.float32).reshape(-1, self.dim)
        scores = np.full((len(queries), k), -np.finfo(np.float32).max, np.float32)
        found = np.full((len(queries), k), -1, np.int64)
        if len(queries) == 0 or self.count == 0:
            return np.zeros((len(queries), k), np.float32), found
        results = self.client.search(self.collection, data=queries.tolist(), limit=k,
                                     search_params={"metric_type": "IP"})
        for row, hits in enumerate(results):
            for col, hit in enumerate(hits[:k]):
                scores[row, col], found[row, col] = hit["distance"], hit["id"]
        return scores, found

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        if not len(ids):
            return np.zeros((0, self.dim), np.float32)
        rows = {r["id"]: r["vector"] for r in self.client.get(self.collection, ids=[int(i) for i in ids],
                                                              output_fields=["vector"])}
        return np.asarray([rows[int(i)] for i in ids], dtype=np.float32)

    @property
    def count(self) -> int:
        return int(self.client.get_collection_stats(self.collection)["row_count"])

    def save(self, path: Path) -> None:
        if hasattr(self.client, "flush"):
            self.client.flush(self.collection)

    def close(self) -> None:
        self.client.close()

    @classmethod
    def load(cls, path: Path, dim: int, read_only: bool = False, name: str | None = None) -> "MilvusBackend":
        if not os.environ.get(cls.URI_ENV) and not Path(path).exists():
            raise FileNotFoundError(path)
        return cls(dim, path=path, fresh=False, name=name)


BACKENDS: dict[str, type[VectorBackend]] = {"faiss": FaissBackend, "milvus": MilvusBackend}
