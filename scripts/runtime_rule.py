"""Whether a faster CPU runtime may be the default, by issue 28's retrieval rule: on the benchmarks
(both splits, every kind) R@1 moves by at most 0.3 points, and no kind loses more than one query in 300.

    python scripts/runtime_rule.py .cache/bench/gallery [--fast openvino] [--out /tmp/runtime-rule]

Each runtime (``onnx``, the exact fp32 default, and ``--fast``) indexes the gallery itself, then runs
`bench copies -n 100`, `bench regions -n 50` and 150 more subjects on photos a split (seed 7: the kind
whose scores sit closest together). Prints one JSON object: R@1 hits per benchmark, kind and split
for both runtimes, and the verdict.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def run(runtime: str, gallery: str, out: Path) -> dict[str, tuple[int, int]]:
    """{"bench/split/kind": (first hits right, queries)} of default search under ``runtime``."""
    from semcopy_lib.app import SearchService, build_index
    from semcopy_lib.encoders.onnx_runtime import RUNTIME_ENV
    from semcopy_lib.eval.copies import run_copies_bench
    from semcopy_lib.eval.regions import _found, background_photos, make_region_queries, run_regions_bench

    os.environ[RUNTIME_ENV] = runtime  # read when each encoder is made
    index = out / runtime / "idx"
    build_index(gallery, index, progress=False)
    service = SearchService(index)
    counts: dict[str, tuple[int, int]] = {}
    copies = run_copies_bench(service, gallery, out / runtime / "copies", n=100)
    regions = run_regions_bench(service, gallery, out / runtime / "regions", per_kind=50)
    for bench, report, key in (("copies", copies, "r1"), ("regions", regions, "r1_regions")):
        for split, table in report["splits"].items():
            for kind, row in table["kinds"].items():
                n = row.get("queries", 100)
                counts[f"{bench}/{split}/{kind}"] = (round(row[key] * n), n)
    for split in ("tuning", "held-out"):
        queries = make_region_queries(gallery, out / runtime / "subjects" / split, 150, 7,
                                      backgrounds=background_photos(service, split), split=split, kinds=("background",))
        results = service.search([q.path for q in queries], k=10)
        counts[f"subjects/{split}/background"] = (sum(_found(r.hits, q)[0] for q, r in zip(queries, results)), len(queries))
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gallery")
    ap.add_argument("--fast", default="openvino", help="the runtime judged against onnx (default openvino)")
    ap.add_argument("--out", default="/tmp/runtime-rule")
    args = ap.parse_args()
    out = Path(args.out)
    exact, fast = run("onnx", args.gallery, out), run(args.fast, args.gallery, out)
    total = sum(n for _, n in exact.values())
    moved = (sum(h for h, _ in fast.values()) - sum(h for h, _ in exact.values())) / total
    by_kind: dict[str, list[int]] = {}
    for key, (hits, n) in exact.items():
        kind = key.split("/")[-1]
        by_kind.setdefault(kind, [0, 0])
        by_kind[kind][0] += fast[key][0] - hits
        by_kind[kind][1] += n
    worst = {kind: f"{d:+d} of {n}" for kind, (d, n) in by_kind.items() if d < 0}
    passes = abs(moved) <= 0.003 and all(-d <= n / 300 for d, n in by_kind.values())
    print(json.dumps({"onnx": exact, args.fast: fast, "r1_change_points": round(100 * moved, 2),
                      "kinds_losing": worst, "passes": passes}, indent=1))


if __name__ == "__main__":
    main()
