"""A 2-D map of the gallery (UMAP), computed once per index and cached beside it; queries placed on it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semcopy_lib.index import GalleryIndex

#: The cache file in the index directory: gallery ids and their (x, y).
CACHE_NAME = "map2d.npz"
#: Neighbours whose map positions, weighted by similarity, place a new point.
PLACE_NEIGHBOURS = 5
#: Share of the gallery that may be new since the cached map before it is recomputed.
MAX_NEW_SHARE = 0.2


def umap_2d(vectors: np.ndarray, seed: int = 0, n_neighbors: int = 15) -> np.ndarray:
    """(N, D) unit vectors -> (N, 2) UMAP coordinates under the cosine metric (seeded, single-threaded)."""
    import umap

    n = len(vectors)
    if n < 3:
        return np.zeros((n, 2), dtype=np.float32)
    reducer = umap.UMAP(n_components=2, metric="cosine", n_neighbors=min(n_neighbors, n - 1), random_state=seed,
                        init="random" if n < 10 else "spectral")
    return reducer.fit_transform(vectors).astype(np.float32)


@dataclass
class GalleryMap:
    """Gallery ids, classes, files and (N, 2) positions, with the (N, D) vectors that placed them."""

    ids: list[str]
    labels: list[str]
    sources: list[str]
    xy: np.ndarray
    vectors: np.ndarray

    def place(self, vectors: np.ndarray) -> np.ndarray:
        """(M, D) unit vectors -> (M, 2): the similarity-weighted mean position of their nearest gallery images."""
        if len(self.ids) == 0:
            return np.zeros((len(vectors), 2), dtype=np.float32)
        sims = vectors @ self.vectors.T
        k = min(PLACE_NEIGHBOURS, len(self.ids))
        near = np.argsort(-sims, axis=1)[:, :k]
        weights = np.clip(np.take_along_axis(sims, near, axis=1), 1e-3, None)
        return ((self.xy[near] * weights[..., None]).sum(1) / weights.sum(1, keepdims=True)).astype(np.float32)


def gallery_map(index: GalleryIndex, seed: int = 0) -> GalleryMap:
    """The index's map: from ``CACHE_NAME`` when it covers the gallery; new images placed by their
    neighbours (and the cache updated); recomputed with UMAP when there is no cache or much changed."""
    records, vectors = index.image_vectors()
    ids = [r.gallery_id for r in records]
    cache = Path(index.directory) / CACHE_NAME
    known: dict[str, np.ndarray] = {}
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as data:
                known = dict(zip(data["ids"].tolist(), data["xy"]))
        except (OSError, ValueError, KeyError):
            known = {}  # a broken cache is recomputed
    have = [i for i, g in enumerate(ids) if g in known]
    if ids and len(have) >= (1 - MAX_NEW_SHARE) * len(ids) and len(have) >= PLACE_NEIGHBOURS:
        xy = np.zeros((len(ids), 2), dtype=np.float32)
        xy[have] = [known[ids[i]] for i in have]
        new = [i for i in range(len(ids)) if ids[i] not in known]
        if new:
            old = GalleryMap([ids[i] for i in have], [], [], xy[have], vectors[have])
            xy[new] = old.place(vectors[new])
    else:
        xy = umap_2d(vectors, seed=seed)
    if len(have) != len(ids) or len(known) != len(ids):
        _save(cache, ids, xy)
    return GalleryMap(ids, [r.label for r in records], [r.source for r in records], xy, vectors)


def _save(path: Path, ids: list[str], xy: np.ndarray) -> None:
    """Write the cache atomically (a temporary file renamed over it)."""
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, ids=np.array(ids, dtype=str), xy=np.asarray(xy, dtype=np.float32))
    tmp.replace(path)
