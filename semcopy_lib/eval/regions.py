"""The regions benchmark: composites, collages, screenshots and subjects on photos made from gallery images.

Every query hides one gallery image at a known box (collage neighbours and page pictures are
generated pictures that match nothing; backgrounds are photos the gallery does not hold), except a
``composite``: a gallery drawing pasted on a gallery photo, whose two sources are both wanted. We
measure whether search ranks the hidden image first (both sources in the first two hits for a
composite), with and without regions, whether a searched region has IoU >= 0.5 with its box, and
what the same encoder finds given that box (the query cropped to it): the bar default search is held to.

The queries come in two splits that differ in what matters (:data:`STYLES`): the gallery classes
drawn, the background photos, the compositing (scale, turn, drop shadow, transparency), the collage
grids, tiles and neighbours, and the page sizes and families. Settings are tuned on ``tuning`` only;
``held-out`` tells whether they carry over.
"""

from __future__ import annotations

import os
import random
import time
import warnings
import zlib
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from PIL import Image

from semcopy_lib.data import GalleryFile, ImageLoadError, NoImages, load_image, scan_images
from semcopy_lib.data import compose
from semcopy_lib.data.folders import sha256_of
from semcopy_lib.data.loading import pil_open
from semcopy_lib.data.samples import sample_photo_files
from semcopy_lib.data.synth import crop_jpeg
from semcopy_lib.eval.pictures import SamePictures
from semcopy_lib.segment import Box, crop, iou

QUERY_KINDS = ("clean", "screenshot", "webpage", "collage", "background", "composite")
SPLITS = ("tuning", "held-out")
#: Why :func:`make_region_queries` makes no query of a kind (the others are always made): the report
#: says so rather than leaving the kind's row out silently.
NOT_MADE = {"webpage": "Chromium not found (apt-get install chromium)",
            "composite": "no opaque gallery picture for this split to paste a drawing on"}


@dataclass(frozen=True)
class SplitStyle:
    """How the queries of one split are composed.

    Attributes:
        scale: a pasted subject's longer side, as a share of the background's shorter side (range).
        turn: a pasted subject is turned by up to this many degrees, in ``turn_share`` of the queries.
        shadow: a pasted subject gets a drop shadow of 2-``shadow`` pixels in ``shadow_share`` of them.
        opacity: a pasted subject covers the background this much (range; (1, 1): opaque).
        grids: collage (rows, cols) drawn from.
        tiles: collage tile (width, height) drawn from.
        gutters: collage gutter widths drawn from (0: touching tiles).
        gutter_colours: collage gutter colours drawn from.
        neighbours: the other tiles: ``pictures`` (generated colour fields) or ``mixed`` (with printed pages).
        page_sizes: PIL-drawn page (width, height) drawn from.
        families: Chromium page families (:data:`~semcopy_lib.data.webpages.FAMILIES`).
    """

    scale: tuple[float, float]
    turn: float
    turn_share: float
    shadow: int
    shadow_share: float
    opacity: tuple[float, float]
    grids: tuple[tuple[int, int], ...]
    tiles: tuple[tuple[int, int], ...]
    gutters: tuple[int, ...]
    gutter_colours: tuple[tuple[int, int, int], ...]
    neighbours: str
    page_sizes: tuple[tuple[int, int], ...]
    families: tuple[str, ...]


STYLES = {
    "tuning": SplitStyle(
        scale=(0.35, 0.6), turn=10.0, turn_share=0.3, shadow=6, shadow_share=0.3, opacity=(1.0, 1.0),
        grids=((1, 2), (2, 1), (2, 2), (2, 3), (3, 2)), tiles=((256, 256),), gutters=(0, 0, 6, 12),
        gutter_colours=((255, 255, 255), (0, 0, 0), (240, 240, 240)), neighbours="pictures",
        page_sizes=((1280, 800),), families=("site",)),
    "held-out": SplitStyle(
        scale=(0.2, 0.7), turn=25.0, turn_share=0.5, shadow=12, shadow_share=0.5, opacity=(0.75, 1.0),
        grids=((1, 3), (3, 1), (3, 3), (2, 4)), tiles=((200, 280), (320, 240), (240, 240)), gutters=(0, 4, 20),
        gutter_colours=((30, 60, 110), (250, 235, 200), (60, 60, 60)), neighbours="mixed",
        page_sizes=((1024, 768), (1600, 1000)), families=("app",)),
}


@dataclass
class RegionQuery:
    path: Path
    kind: str
    gallery_id: str
    #: where the hidden image shows: a pasted drawing's visible pixels (not its transparent canvas), a
    #: page's picture, a collage's tile, the whole query for a clean crop
    box: Box
    #: a composite's background: the second source wanted among the first two hits
    also: str | None = None


def split_of(gallery_id: str, folders: list[str]) -> str:
    """The split whose queries hide ``gallery_id``: its top-level folder's, alternating over the sorted
    ``folders`` (a gallery without folders: by a hash of the id)."""
    top = gallery_id.split("/", 1)[0] if "/" in gallery_id else None
    if top is not None and len(folders) >= 2:
        return SPLITS[folders.index(top) % 2]
    return SPLITS[zlib.crc32(gallery_id.encode()) % 2]


def split_files(files: list[GalleryFile], split: str) -> list[GalleryFile]:
    """The gallery files whose class belongs to ``split`` (:func:`split_of` over their top-level folders);
    all of them when the split would be empty."""
    folders = sorted({f.gallery_id.split("/", 1)[0] for f in files if "/" in f.gallery_id})
    return [f for f in files if split_of(f.gallery_id, folders) == split] or files


def _opaque(path: Path) -> bool:
    """Whether an image file has no transparency (read from its header)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with pil_open()(path) as im:  # PIL's own, whoever replaced Image.open
                return "A" not in im.getbands() and "transparency" not in im.info
    except (OSError, Image.DecompressionBombError):
        return False


def make_region_queries(images_dir: os.PathLike | str, out_dir: os.PathLike | str, per_kind: int = 50,
                        seed: int = 0, backgrounds: list[Image.Image] | None = None,
                        split: str = "tuning", kinds: tuple[str, ...] = QUERY_KINDS) -> list[RegionQuery]:
    """Write ``per_kind`` queries of each of ``kinds`` (:data:`QUERY_KINDS`) for ``split`` (seeded) and return them.

    ``backgrounds``: pictures to paste subjects on (photos that are not in the gallery); default:
    generated pictures. Subjects keep their transparency, as a clip-art pasted on a photo does. A
    composite pastes a drawing (a gallery image with transparency) on one of the split's opaque gallery
    images (the pip-package photos it holds, else any without transparency); none are made when the gallery has
    none for the split. One seeded sequence draws every query, after the generated backgrounds when
    ``backgrounds`` is None: a kind's queries depend on the kinds drawn before it and on ``backgrounds``,
    so a call for other ``kinds``, or without ``backgrounds``, may make other queries than ``semcopy
    bench regions`` does.
    """
    style = STYLES[split]
    every = scan_images(images_dir)
    files = split_files(every, split)
    # composites go on the gallery's photos (else its opaque pictures): half of them for each split
    shipped = {sha256_of(p) for p in sample_photo_files().values()}
    photos = [f for f in every if sha256_of(f.path) in shipped] or [f for f in every if _opaque(f.path)]
    hosts = sorted(photos, key=lambda f: f.gallery_id)[SPLITS.index(split)::2]
    rng = random.Random(f"{seed}-{split}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def pick(keep_alpha: bool = False, pool: list[GalleryFile] = files) -> tuple[str, Image.Image]:
        for _ in range(1000):
            f = rng.choice(pool)
            try:
                return f.gallery_id, load_image(f.path, max_side=768, keep_alpha=keep_alpha)
            except ImageLoadError:
                continue
        raise NoImages(f"{images_dir}: no readable image among {len(pool)} files")

    def pasted(subject: Image.Image, background: Image.Image) -> tuple[Image.Image, Box]:
        turn = rng.uniform(-style.turn, style.turn) if rng.random() < style.turn_share else 0.0
        shadow = rng.randint(2, style.shadow) if rng.random() < style.shadow_share else 0
        return compose.on_background(subject, background, rng, scale=style.scale, turn=turn, shadow=shadow,
                                     opacity=rng.uniform(*style.opacity), visible=True)

    # collage neighbours and backgrounds come from no gallery, so only the hidden image can match
    backgrounds = backgrounds or [compose.random_picture(rng) for _ in range(12)]
    queries = []
    for kind in kinds:
        if kind == "webpage":
            queries += _webpage_queries([pick() for _ in range(per_kind)], out, seed, style.families)
            continue
        if kind == "composite" and not hosts:
            continue
        for i in range(per_kind):
            gid, img = pick(keep_alpha=kind in ("background", "composite"))
            also = None
            if kind == "clean":
                query, box = crop_jpeg(img, rng), (0, 0, 0, 0)
            elif kind == "screenshot":
                query, box = compose.page(img, rng, size=rng.choice(style.page_sizes))
            elif kind == "collage":
                rows, cols = rng.choice(style.grids)
                tile = rng.choice(style.tiles)
                others = [compose.text_page(rng, tile) if style.neighbours == "mixed" and rng.random() < 0.5
                          else compose.random_picture(rng, tile) for _ in range(rows * cols - 1)]
                query, box = compose.collage(img, others, rng, rows, cols, gutter=rng.choice(style.gutters),
                                             tile=tile, colour=rng.choice(style.gutter_colours))
            elif kind == "background":
                query, box = pasted(img, rng.choice(backgrounds))
            else:
                also, host = pick(pool=hosts)
                query, box = pasted(img, host)
            path = out / f"{split}-{kind}-{i:04d}.png"
            query.save(path)
            queries.append(RegionQuery(path, kind, gid, box if kind != "clean" else (0, 0, *query.size), also))
    return queries


def _webpage_queries(picked: list[tuple[str, Image.Image]], out: Path, seed: int,
                     families: tuple[str, ...]) -> list[RegionQuery]:
    """Chromium-rendered pages around the picked images (none when Chromium is not installed)."""
    from semcopy_lib.data.webpages import chromium_path, render_pages

    if chromium_path() is None:
        return []
    queries = []
    # closed here, not when collected: Playwright's sync API cannot start while another is open
    with closing(render_pages([im for _, im in picked], seed, families=families)) as pages:
        for i, ((gid, _), (shot, box)) in enumerate(zip(picked, pages)):
            path = out / f"{'-'.join(families)}-webpage-{i:04d}.png"
            shot.save(path)
            queries.append(RegionQuery(path, "webpage", gid, box))
    return queries


def background_photos(service, split: str | None = None) -> list[Image.Image]:
    """The photos shipped in pip packages that are not in the service's gallery (by content); with
    ``split``, that split's half of them (alternating by name)."""
    in_gallery = {r.sha256 for r in service.index.records()}
    named = sorted(sample_photo_files().items()) if split is not None else sample_photo_files().items()
    paths = [p for _, p in named if sha256_of(p) not in in_gallery]
    if split is not None:
        paths = paths[SPLITS.index(split)::2]
    return [load_image(p, max_side=640) for p in paths]


def _found(hits, query: RegionQuery, same: Callable[[str, str], bool] | None = None) -> tuple[bool, bool]:
    """(the first hit is right, and for a composite both sources are among the first two hits); with
    ``same`` (:class:`~semcopy_lib.eval.pictures.SamePictures`), a hit of a source's twin counts as it."""
    same = same or str.__eq__
    ids = [h.gallery_id for h in hits]
    wanted = [query.gallery_id] + ([query.also] if query.also else [])
    first = bool(ids) and any(same(ids[0], w) for w in wanted)
    return first, all(any(same(i, w) for i in ids[:2]) for w in wanted)


def box_found(service, queries: list[RegionQuery], out_dir) -> list[bool]:
    """Whether the same encoder given each query's true box finds its hidden picture first: the query
    cropped to ``query.box`` (saved as PNG in ``out_dir``) and searched as a whole image, without regions;
    for a composite its drawing, whose box it is (not the photo it was pasted on)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, query in enumerate(queries):
        paths.append(out / f"{i:05d}-{Path(query.path).stem}.png")  # numbered: two boxes of one query
        crop(load_image(query.path), query.box).save(paths[-1])
    results = service.search(paths, k=10, regions=False)
    return [_found(result.hits, replace(query, also=None))[0] for query, result in zip(queries, results)]


def run_regions_bench(service, images_dir, out_dir, per_kind: int = 50, seed: int = 0,
                      splits: tuple[str, ...] = SPLITS) -> dict:
    """Per split and kind: R@1 with and without regions (for composites: the first hit is a source, and
    ``both2_*``: both sources in the first two hits), ``r1_picture`` / ``both2_picture``: the same for
    the default search with a hit of a source's twin counting (:class:`~semcopy_lib.eval.pictures.SamePictures`:
    the same drawing under another name, mirrored, or one of a series that differs in a detail),
    ``box50``: the share of queries of which a searched region has IoU >= 0.5 with the hidden picture's
    box, ``r1_box``: R@1 of the same encoder given that box (:func:`box_found`; not for clean crops,
    whose box is the whole query), and timings (of the two searches of the queries themselves).

    Subjects are pasted on the split's half of the pip-package photos that the gallery does not hold
    (on generated pictures when it holds them all); ``backgrounds`` in the result says which.
    ``not_made``: each kind of which no query could be made, with why (:data:`NOT_MADE`).
    """
    report: dict = {"splits": {}}
    same = SamePictures(images_dir, {r.gallery_id: r.sha256 for r in service.index.records()})
    for split in splits:
        photos = background_photos(service, split)
        queries = make_region_queries(images_dir, Path(out_dir) / split, per_kind, seed, backgrounds=photos, split=split)
        paths = [q.path for q in queries]
        timings, results = {}, {}
        service.search(paths[:4], k=10, regions=True, progress=False)  # warm up, so neither timing pays first-call costs
        for regions in (False, True):
            start = time.perf_counter()
            results[regions] = service.search(paths, k=10, regions=regions)
            timings[regions] = time.perf_counter() - start
        boxed = [i for i, q in enumerate(queries) if q.kind != "clean"]
        in_box = dict(zip(boxed, box_found(service, [queries[i] for i in boxed], Path(out_dir) / split / "box")))
        rows, not_made = {}, {}
        for kind in QUERY_KINDS:
            idx = [i for i, q in enumerate(queries) if q.kind == kind]
            if not idx:
                not_made[kind] = NOT_MADE[kind]
                continue
            row: dict = {"queries": len(idx)}
            for regions, label, judge in ((False, "whole", None), (True, "regions", None), (True, "picture", same)):
                found = [_found(results[regions][i].hits, queries[i], judge) for i in idx]
                row[f"r1_{label}"] = round(sum(f for f, _ in found) / len(idx), 3)
                if kind == "composite":
                    row[f"both2_{label}"] = round(sum(b for _, b in found) / len(idx), 3)
            if kind != "clean":
                row["box50"] = round(sum(any(iou(r.box, queries[i].box) >= 0.5 for r in results[True][i].regions)
                                         for i in idx) / len(idx), 3)
                row["r1_box"] = round(sum(in_box[i] for i in idx) / len(idx), 3)
            rows[kind] = row
        report["splits"][split] = {
            "kinds": rows, "not_made": not_made, "backgrounds": f"{len(photos)} photos" if photos else "generated",
            "seconds_whole": round(timings[False], 2), "seconds_regions": round(timings[True], 2)}
    return report
