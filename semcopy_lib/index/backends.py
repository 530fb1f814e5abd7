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
    """Exact inner-product search: ``faiss.IndexIDMap2(faiss.IndexFlatIP(D))``."""

    def __init__(self, dim: int, index=None):
        import faiss

        super().__init__(dim)
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
            self.index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> None:
        if len(ids):
            self.index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        if self.count == 0 or len(queries) == 0:
            return (np.zeros((len(queries), k), np.float32), np.full((len(queries), k), -1, np.int64))
        return self.index.search(queries, k)

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
