"""2-D maps of embeddings (UMAP, McInnes et al. 2018) for looking at a gallery."""

from __future__ import annotations

import numpy as np


def umap_2d(vectors: np.ndarray, seed: int = 0, n_neighbors: int = 15) -> np.ndarray:
    """(N, D) unit vectors -> (N, 2) UMAP coordinates under the cosine metric (seeded, single-threaded)."""
    import umap

    n = len(vectors)
    if n < 3:
        return np.zeros((n, 2), dtype=np.float32)
    reducer = umap.UMAP(n_components=2, metric="cosine", n_neighbors=min(n_neighbors, n - 1), random_state=seed,
                        init="random" if n < 10 else "spectral")
    return reducer.fit_transform(vectors).astype(np.float32)
