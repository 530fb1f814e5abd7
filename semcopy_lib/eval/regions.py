"""The regions benchmark: collages, screenshots and subjects on pictures made from gallery images.

Every query hides one gallery image at a known box (collage neighbours and backgrounds are generated
pictures that match nothing); we measure whether ``analyse`` finds a box with IoU >= 0.7 to it and
whether search ranks that gallery image first, with and without regions.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from semcopy_lib.data import ImageLoadError, load_image, scan_folder
from semcopy_lib.data import compose
from semcopy_lib.data.synth import crop_jpeg
from semcopy_lib.segment import Box, iou

KINDS = ("clean", "screenshot", "webpage", "collage", "background")


@dataclass
class RegionQuery:
    path: Path
    kind: str
    gallery_id: str
    box: Box


def make_region_queries(images_dir: os.PathLike | str, out_dir: os.PathLike | str, per_kind: int = 50,
                        seed: int = 0, backgrounds: list[Image.Image] | None = None) -> list[RegionQuery]:
    """Write ``per_kind`` queries of each kind in :data:`KINDS` (seeded) and return them.

    ``backgrounds``: pictures to paste subjects on (photos that are not in the gallery); default:
    generated pictures. Subjects keep their transparency, as a clip-art pasted on a photo does.
    """
    files = scan_folder(images_dir)
    rng = random.Random(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def pick(keep_alpha: bool = False) -> tuple[str, Image.Image]:
        while True:
            f = rng.choice(files)
            try:
                return f.gallery_id, load_image(f.path, max_side=768, keep_alpha=keep_alpha)
            except ImageLoadError:
                continue

    # collage neighbours and backgrounds come from no gallery, so only the hidden image can match
    backgrounds = backgrounds or [compose.random_picture(rng) for _ in range(12)]
    queries = []
    for kind in KINDS:
        if kind == "webpage":
            queries += _webpage_queries([pick() for _ in range(per_kind)], out, seed)
            continue
        for i in range(per_kind):
            gid, img = pick(keep_alpha=kind == "background")
            if kind == "clean":
                query, box = crop_jpeg(img, rng), (0, 0, 0, 0)
            elif kind == "screenshot":
                query, box = compose.page(img, rng)
            elif kind == "collage":
                rows, cols = rng.choice([(1, 2), (2, 1), (2, 2), (2, 3), (3, 2)])
                others = [compose.random_picture(rng, (256, 256)) for _ in range(rows * cols - 1)]
                query, box = compose.collage(img, others, rng, rows, cols, gutter=rng.choice([0, 0, 6, 12]))
            else:
                query, box = compose.on_background(img, rng.choice(backgrounds), rng)
            path = out / f"{kind}-{i:04d}.png"
            query.save(path)
            queries.append(RegionQuery(path, kind, gid, box if kind != "clean" else (0, 0, *query.size)))
    return queries


def _webpage_queries(picked: list[tuple[str, Image.Image]], out: Path, seed: int) -> list[RegionQuery]:
    """Chromium-rendered pages around the picked images (none when Chromium is not installed)."""
    from semcopy_lib.data.webpages import chromium_path, render_pages

    if chromium_path() is None:
        return []
    queries = []
    for i, ((gid, _), (shot, box)) in enumerate(zip(picked, render_pages([im for _, im in picked], seed))):
        path = out / f"webpage-{i:04d}.png"
        shot.save(path)
        queries.append(RegionQuery(path, "webpage", gid, box))
    return queries


def background_photos(service) -> list[Image.Image]:
    """The photos shipped in pip packages that are not in the service's gallery (by content)."""
    from semcopy_lib.data.folders import sha256_of
    from semcopy_lib.data.samples import sample_photo_files

    in_gallery = {r.sha256 for r in service.index.records()}
    return [load_image(p, max_side=640) for p in sample_photo_files().values() if sha256_of(p) not in in_gallery]


def run_regions_bench(service, images_dir, out_dir, per_kind: int = 50, seed: int = 0) -> dict:
    """R@1 with and without regions, segmentation IoU >= 0.7 rate, and timings, per kind.

    Subjects are pasted on the pip-package photos that the gallery does not hold (on generated
    pictures when it holds them all); ``backgrounds`` in the result says which.
    """
    from semcopy_lib.segment import analyse, subject_boxes

    photos = background_photos(service)
    queries = make_region_queries(images_dir, out_dir, per_kind, seed, backgrounds=photos)
    paths = [q.path for q in queries]
    timings = {}
    results = {}
    service.search(paths[:4], k=10, regions=True)  # warm up, so neither timing pays first-call costs
    for regions in (False, True):
        start = time.perf_counter()
        results[regions] = service.search(paths, k=10, regions=regions)
        timings[regions] = time.perf_counter() - start
    rows = {}
    for kind in KINDS:
        idx = [i for i, q in enumerate(queries) if q.kind == kind]
        if not idx:
            continue
        row = {"queries": len(idx)}
        for regions, label in ((False, "r1_whole"), (True, "r1_regions")):
            hits = [results[regions][i].hits for i in idx]
            row[label] = round(sum(bool(h) and h[0].gallery_id == queries[i].gallery_id for h, i in zip(hits, idx)) / len(idx), 3)
        if kind != "clean":
            found = 0
            for i in idx:
                image = load_image(queries[i].path)
                layout = analyse(image)
                # the boxes that search crops: photos and tiles, or the subjects of a single picture
                boxes = layout.boxes + (subject_boxes(image) if layout.layout == "single" else [])
                found += any(iou(b, queries[i].box) >= 0.7 for b in boxes)
            row["iou70"] = round(found / len(idx), 3)
        rows[kind] = row
    return {"kinds": rows, "backgrounds": f"{len(photos)} photos" if photos else "generated",
            "seconds_whole": round(timings[False], 2), "seconds_regions": round(timings[True], 2),
            "time_ratio": round(timings[True] / timings[False], 2)}
