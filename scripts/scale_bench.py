"""The regions and copies benchmarks against the whole allowed part of openclipart (about 3,800 images,
against the 508 of the benchmark gallery), where a hit of the same picture filed under another name
counts as right.

    python scripts/scale_bench.py gallery .cache/scale/gallery
    semcopy index build .cache/scale/gallery --index .cache/scale/idx
    python scripts/scale_bench.py run .cache/scale/gallery --index .cache/scale/idx [-n 100] [--out /tmp/scale] [--split tuning]

A large gallery holds look-alikes that a sample of 90 images a category does not, and a cosine reached
by chance in a small gallery is reached more often in a large one. Per split and kind (the queries of
``semcopy bench regions`` and ``semcopy bench copies``, seed 0, ``n`` of each), R@1 counted two ways:
the first hit is the hidden picture or a byte-identical file (``r1_bytes``: openclipart files one
drawing in several folders), or also one that is the same picture to the eye
(``r1_picture``: :class:`~semcopy_lib.eval.pictures.SamePictures`, which also joins the near-identical
generated stars of ``shapes``); composites: both sources in the first two hits (``both2``, by picture).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path


def build_gallery(out: Path) -> None:
    """Every image file of the allowed categories and the benchmark gallery's photos (every other
    pip-package photo) into ``out``. A file that is a link into another category's folder (openclipart
    files some drawings of reserved categories under allowed ones too) is left out."""
    from semcopy_lib.data.clipart import ALLOWED_CATEGORIES, CLIPART_ROOT
    from semcopy_lib.data.folders import scan_folder
    from semcopy_lib.data.samples import sample_photo_files

    allowed = [(Path(CLIPART_ROOT) / c).resolve() for c in ALLOWED_CATEGORIES]
    for category in ALLOWED_CATEGORIES:
        for f in scan_folder(Path(CLIPART_ROOT) / category):
            if not any(f.path.resolve().is_relative_to(a) for a in allowed):
                continue
            dest = out / category / f.gallery_id
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f.path, dest)
    (out / "photos").mkdir(parents=True, exist_ok=True)
    for i, (name, path) in enumerate(sorted(sample_photo_files().items())):
        if i % 2 == 0:
            shutil.copyfile(path, out / "photos" / f"{name}{path.suffix}")


def run(images_dir: Path, index_dir: Path, n: int, out: Path, splits: tuple[str, ...] | None = None) -> dict:
    """{split: {kind: {"queries", "r1_bytes", "r1_picture"[, "both2"]}}} for ``splits`` (default both)."""
    from semcopy_lib.app import SearchService
    from semcopy_lib.data import scan_images
    from semcopy_lib.eval.copies import make_copy_queries
    from semcopy_lib.eval.pictures import SamePictures
    from semcopy_lib.eval.regions import SPLITS, background_photos, make_region_queries

    service = SearchService(index_dir)
    sha = {r.gallery_id: r.sha256 for r in service.index.records()}
    pictures = SamePictures(images_dir, sha)

    def same(a: str, b: str, by_picture: bool) -> bool:
        if by_picture:
            return pictures(a, b)
        return a == b or (a in sha and sha[a] == sha.get(b))

    every = scan_images(images_dir)
    report: dict = {}
    for split in splits or SPLITS:
        photos = background_photos(service, split)
        queries = [(q.path, q.kind, q.gallery_id, q.also) for q in
                   make_region_queries(images_dir, out / split / "regions", n, 0, backgrounds=photos, split=split)]
        copies, _ = make_copy_queries(every, out / split / "copies", split, n, 0, photos)
        queries += [(q.path, f"copy {q.kind}", next(iter(q.relevant)), None) for q in copies]
        results = service.search([p for p, _, _, _ in queries], k=10)
        rows: dict[str, dict] = {}
        for (_, kind, target, also), result in zip(queries, results):
            ids = [h.gallery_id for h in result.hits]
            row = rows.setdefault(kind, {"queries": 0, "r1_bytes": 0, "r1_picture": 0, **({"both2": 0} if also else {})})
            row["queries"] += 1
            for key, by_picture in (("r1_bytes", False), ("r1_picture", True)):
                row[key] += bool(ids) and (ids[0] == also or same(ids[0], target, by_picture))
            if also:
                row["both2"] += also in ids[:2] and any(same(g, target, True) for g in ids[:2])
        report[split] = {kind: {k: v if k == "queries" else round(v / row["queries"], 3) for k, v in row.items()}
                         for kind, row in rows.items()}
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("gallery", help="copy the allowed categories and the photos into a folder")
    p.add_argument("out")
    p = sub.add_parser("run", help="search the benchmarks' queries against the large gallery's index")
    p.add_argument("images_dir")
    p.add_argument("--index", required=True)
    p.add_argument("-n", type=int, default=100, help="queries of each kind per split (default 100)")
    p.add_argument("--out", default="/tmp/scale-bench", help="where the queries are written")
    p.add_argument("--split", choices=["tuning", "held-out", "both"], default="both")
    args = ap.parse_args()
    if args.command == "gallery":
        build_gallery(Path(args.out))
    else:
        splits = None if args.split == "both" else (args.split,)
        print(json.dumps(run(Path(args.images_dir), Path(args.index), args.n, Path(args.out), splits), indent=1))


if __name__ == "__main__":
    main()
