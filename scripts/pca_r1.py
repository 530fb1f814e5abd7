"""Whole-image R@1 of the copies benchmark's queries with the vectors as they are, and after a PCA
learned on the gallery (plain, whitened, whitened with shrinkage), both splits.

    python scripts/pca_r1.py .cache/bench/gallery --index .cache/bench/idx [-n 100] [--out /tmp/pca-r1]

Answers issue 28's question whether a dimension reduction (the compressed index's PCA) or PCA-whitening
changes retrieval. Every stored vector of an image counts (its views), the best one per image wins.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    from semcopy_lib.app import SearchService
    from semcopy_lib.data import load_image, scan_folder
    from semcopy_lib.eval.copies import make_copy_queries
    from semcopy_lib.eval.regions import SPLITS, background_photos

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images_dir")
    ap.add_argument("--index", required=True)
    ap.add_argument("-n", type=int, default=100, help="gallery images copied per split (default 100)")
    ap.add_argument("--out", default="/tmp/pca-r1", help="where the queries are written")
    args = ap.parse_args()

    service = SearchService(Path(args.index), read_only=True)
    index = service.index
    records = index.records()
    owner = {r.id: r.gallery_id for r in records}
    ids, blocks = [], []
    for i, v in index.store.iter_vectors(index.dim):
        ids += i.tolist()
        blocks.append(v)
    gallery, gallery_ids = np.concatenate(blocks), np.array([owner[i] for i in ids])
    _, per_image = index.image_vectors(records)  # what the PCA is learned on: one vector an image
    mean = per_image.mean(0)
    _, sing, vt = np.linalg.svd(per_image - mean, full_matrices=False)
    var = sing ** 2 / len(per_image)
    variants = {"as stored": lambda x: x}
    for d in (128, 256):
        variants[f"PCA {d}"] = lambda x, d=d: (x - mean) @ vt[:d].T
        variants[f"PCA {d} whitened"] = lambda x, d=d: (x - mean) @ vt[:d].T / np.sqrt(var[:d])
        variants[f"PCA {d} whitened, shrunk"] = lambda x, d=d: (x - mean) @ vt[:d].T / np.sqrt(var[:d] + var[:d].mean())

    every = scan_folder(args.images_dir)
    table: dict = {}
    for split in SPLITS:
        queries, _ = make_copy_queries(every, Path(args.out) / split, split, args.n, 0, background_photos(service, split))
        vectors = service.encoder.embed([load_image(q.path) for q in queries])
        relevant = np.array([next(iter(q.relevant)) for q in queries])
        kinds = np.array([q.kind for q in queries])
        for name, f in variants.items():
            g, q = f(gallery), f(vectors)
            g = g / np.linalg.norm(g, axis=1, keepdims=True)
            q = q / np.linalg.norm(q, axis=1, keepdims=True)
            hit = gallery_ids[np.argmax(q @ g.T, axis=1)] == relevant
            table.setdefault(name, {})[split] = {"all": round(float(hit.mean()), 3),
                                                 **{k: round(float(hit[kinds == k].mean()), 2) for k in sorted(set(kinds))}}
    print(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
