"""A gallery index that outgrows IVF-SQ8: synthetic vectors stored through ``GalleryIndex.add``, the
index turned compressed by ``optimise`` (as ``index build`` does past the 8-bit budget), then searched
through ``GalleryIndex.search`` (SQLite records included) and scored against exact search.

    python scripts/compressed_gallery.py --index .cache/bench/idx [-n 1000000] [--out /tmp/compressed-gallery]

The budget (``SQ8_MAX_BYTES``, about 3.3M vectors of 1,280 dimensions) is lowered to ``n - 1`` vectors
so that a million vectors take the path ten million would. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np


def main() -> None:
    from semcopy_lib.eval.speed import draw_synthetic, synthetic_vectors
    from semcopy_lib.index import GalleryIndex, NewItem, compressed
    from semcopy_lib.index.flat import ExactTop, recall_at_k

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", required=True, help="a real index: its vectors seed the synthetic ones")
    ap.add_argument("-n", type=int, default=1_000_000)
    ap.add_argument("--model", default="spectrum", choices=["noise", "spectrum"])
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--out", default="/tmp/compressed-gallery")
    args = ap.parse_args()

    source = GalleryIndex.open(args.index, read_only=True)
    _, real = source.image_vectors()
    dim = real.shape[1]
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    index = GalleryIndex.create(out, {"name": source.encoder_name}, dim)
    start = time.perf_counter()
    at = 0
    for block in draw_synthetic(real, args.n, seed=1, model=args.model, chunk=20_000):
        index.add([NewItem(f"s/{at + i}.png", "s", f"{at + i}", (0, 0, 1, 1), source.encoder_name, "", v)
                   for i, v in enumerate(block)], save=False)
        at += len(block)
    stored_s = time.perf_counter() - start
    compressed.SQ8_MAX_BYTES = (args.n - 1) * dim
    start = time.perf_counter()
    report = index.optimise()
    convert_s = time.perf_counter() - start

    queries = synthetic_vectors(real, args.queries, seed=4, model=args.model)
    top = ExactTop(queries, 10)
    names = {}
    for ids, vectors in index.store.iter_vectors(dim, chunk=50_000):
        top.update(vectors, ids)
    names = {r.id: r.gallery_id for r in index.store.records({int(i) for i in top.ids.ravel()}).values()}
    exact = np.array([[names[int(i)] for i in row] for row in top.ids])
    index.search(queries[:1], k=10)  # first search maps the codes
    start = time.perf_counter()
    found = [[h.gallery_id for h in index.search(q[None], k=10)[0]] for q in queries]
    ms = (time.perf_counter() - start) / len(queries) * 1000
    print(json.dumps({"vectors": args.n, "synthetic": args.model, "vector_index": index.info()["vector_index"],
                      "optimise_report": report, "recall_at_10_gallery_search": round(recall_at_k(np.array(found), exact), 4),
                      "ms_per_query_gallery_search": round(ms, 2), "store_s": round(stored_s, 1),
                      "optimise_s": round(convert_s, 1)}, indent=1))


if __name__ == "__main__":
    main()
