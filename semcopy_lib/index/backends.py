"""Vector search backends behind one interface (after FiftyOne brain's similarity backends).

A backend holds (id, vector) pairs and answers inner-product top-k queries; the metadata lives in
:mod:`semcopy_lib.index.store`. Backends are chosen by name: ``BACKENDS["faiss"]``.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np


class VectorBackend(ABC):
    """Inner-product search over L2-normalised vectors with stable int64 ids."""

    def __init__(self, dim: int):
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
    def load(cls, path: Path, dim: int) -> "VectorBackend": ...


class FaissBackend(VectorBackend):
    """Exact inner-product search: ``faiss.IndexIDMap2(faiss.IndexFlatIP(D))``.

    A flat index is searched as one matrix product over FAISS's own vector storage (no copy): on 2 CPU
    cores, 31 query vectors (a photo's whole image, subjects and windows) against 21,000 vectors took
    20 ms this way and 94 ms through ``IndexFlatIP.search``; one vector took the same 7 ms both ways.
    """

    def __init__(self, dim: int, index=None):
        import faiss

        super().__init__(dim)
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._flat: tuple[np.ndarray, np.ndarray] | None = None  # (N, D) vectors and (N,) ids, a view

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
            self.index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
            self._flat = None  # FAISS may have moved its storage

    def remove(self, ids: np.ndarray) -> None:
        if len(ids):
            self.index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))
            self._flat = None

    def _flat_view(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The stored (N, D) vectors and their ids without copying, when the index is a flat ID map."""
        import faiss

        if self._flat is None and isinstance(self.index, faiss.IndexIDMap2):
            inner = faiss.downcast_index(self.index.index)
            if isinstance(inner, faiss.IndexFlat):
                n = int(inner.ntotal)
                xb = faiss.rev_swig_ptr(inner.get_xb(), n * self.dim).reshape(n, self.dim)
                self._flat = (xb, faiss.vector_to_array(self.index.id_map))
        return self._flat

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        if self.count == 0 or len(queries) == 0:
            return (np.zeros((len(queries), k), np.float32), np.full((len(queries), k), -1, np.int64))
        flat = self._flat_view()
        if flat is None:
            return self.index.search(queries, k)
        xb, ids = flat
        scores = queries @ xb.T  # (Q, N)
        n = min(k, scores.shape[1])
        top = np.argpartition(-scores, n - 1, axis=1)[:, :n] if n < scores.shape[1] else np.tile(np.arange(n), (len(queries), 1))
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), axis=1, kind="stable"), 1)
        out_scores = np.full((len(queries), k), -np.finfo(np.float32).max, np.float32)
        out_ids = np.full((len(queries), k), -1, np.int64)
        out_scores[:, :n], out_ids[:, :n] = np.take_along_axis(scores, top, 1), ids[top]
        return out_scores, out_ids

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        return np.stack([self.index.reconstruct(int(i)) for i in ids]) if len(ids) else np.zeros((0, self.dim), np.float32)

    @property
    def count(self) -> int:
        return int(self.index.ntotal)

    def save(self, path: Path) -> None:
        import faiss

        tmp = Path(f"{path}.tmp")
        faiss.write_index(self.index, str(tmp))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, dim: int) -> "FaissBackend":
        import faiss

        index = faiss.read_index(str(path))
        if index.d != dim:
            raise ValueError(f"{path}: vectors have dimension {index.d}, the manifest says {dim}")
        return cls(dim, index)


BACKENDS: dict[str, type[VectorBackend]] = {"faiss": FaissBackend}
