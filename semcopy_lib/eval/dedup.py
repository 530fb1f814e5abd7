"""``semcopy bench dedup``: groups of copies found in a generated gallery whose groups are known.

Per split, ``groups`` source images of the split's classes each come with three copies (crop + JPEG,
recolour, mirror, strong JPEG, pencil sketch, pasted on a photo, inside a web-page screenshot: every
kind equally often), among ``distinct`` other images of the same classes that have no copy. Scored on
pairs: a pair of images in one found group is right when both come from one source. The same gallery
is grouped by semcopy (the index's encoder at its measured copy score), by imagededup's PHash (its
default Hamming distance, 10) and by the plain backbone (``effnet-lite0`` at its own copy score).
"""

from __future__ import annotations

import itertools
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from semcopy_lib.data import NoImages, compose, load_image, read_files, scan_images, synth
from semcopy_lib.data.samples import sample_photo_files
from semcopy_lib.eval.pictures import picture_print, same_picture
from semcopy_lib.eval.regions import SPLITS, split_files
from semcopy_lib.train.views import on_photo

#: The copy kinds, each made from an RGB picture (``photo``: a background of the split).
COPY_MAKERS: dict[str, Callable[[Image.Image, random.Random, Image.Image], Image.Image]] = {
    "crop": lambda im, rng, photo: synth.crop_jpeg(im, rng),
    "recolour": lambda im, rng, photo: synth.colour_shift(im, rng),
    "mirror": lambda im, rng, photo: synth.mirror(im),
    "jpeg": lambda im, rng, photo: synth.jpeg(im, 25),
    "sketch": lambda im, rng, photo: synth.pencil_sketch(im),
    "on_photo": lambda im, rng, photo: on_photo(_shrunk(im, photo), photo, rng),
    "screenshot": lambda im, rng, photo: compose.page(im, rng)[0],
}
COPIES_EACH = 3


def _shrunk(image: Image.Image, photo: Image.Image) -> Image.Image:
    """``image`` at most 60 % of ``photo``'s short side, so the photo shows around it."""
    side = 0.6 * min(photo.size)
    scale = min(1.0, side / max(image.size))
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))


def make_dedup_gallery(images_dir: os.PathLike | str, out: Path, split: str, groups: int, distinct: int,
                       seed: int = 0) -> tuple[dict[str, int], dict[str, str]]:
    """Write the split's gallery into ``out``: for each of ``groups`` sources ``g{n}/original.png`` and
    three copies, plus ``distinct/d{n}.png``.

    Returns:
        ({file id: its source group, -1 for a distinct image}, {file id: copy kind or "original"}).
    """
    rng = random.Random(f"{seed}-{split}-dedup")
    files = split_files(scan_images(images_dir), split)
    photos = [p for _, p in sorted(sample_photo_files().items())][SPLITS.index(split)::2]
    backgrounds = [load_image(p, max_side=640) for p in photos]
    truth, kinds = {}, {}
    names = list(COPY_MAKERS)
    loaded = _distinct_pictures(read_files(rng.sample(files, len(files)), max_side=640), groups + distinct)
    if not loaded:
        raise NoImages(f"{images_dir}: none of the {len(files)} image files of the {split} split could be read")
    for n, (_, image) in enumerate(loaded[:groups]):
        folder = out / f"g{n:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        image = image.convert("RGB")
        image.save(folder / "original.png")
        truth[f"g{n:03d}/original.png"], kinds[f"g{n:03d}/original.png"] = n, "original"
        for t in range(COPIES_EACH):
            kind = names[(COPIES_EACH * n + t) % len(names)]
            COPY_MAKERS[kind](image, rng, rng.choice(backgrounds)).convert("RGB").save(folder / f"{kind}.png")
            truth[f"g{n:03d}/{kind}.png"], kinds[f"g{n:03d}/{kind}.png"] = n, kind
    (out / "distinct").mkdir(parents=True, exist_ok=True)
    for n, (_, image) in enumerate(loaded[groups:]):
        image.convert("RGB").save(out / "distinct" / f"d{n:03d}.png")
        truth[f"distinct/d{n:03d}.png"], kinds[f"distinct/d{n:03d}.png"] = -1, "distinct"
    return truth, kinds


def _distinct_pictures(found, n: int) -> list:
    """The first ``n`` (file, image) of ``found`` that are not the same picture as an earlier one, nor
    its mirror image."""
    kept, small = [], []
    for f, image in found:
        grey = picture_print(image)
        if not any(same_picture(grey, other) for other in small):
            kept.append((f, image))
            small.append(grey)
            if len(kept) == n:
                break
    return kept


def pair_scores(found: list[set[str]], truth: dict[str, int], kinds: dict[str, str]) -> dict:
    """Pairwise precision and recall of ``found`` groups against ``truth``, and recall per copy kind
    (pairs of the original and that copy)."""
    said = {frozenset(p) for group in found for p in itertools.combinations(sorted(group), 2)}
    by_group: dict[int, list[str]] = {}
    for name, g in truth.items():
        if g >= 0:
            by_group.setdefault(g, []).append(name)
    true = {frozenset(p) for names in by_group.values() for p in itertools.combinations(sorted(names), 2)}
    right = said & true
    per_kind = {}
    for kind in COPY_MAKERS:
        pairs = {frozenset((n, f"{n.split('/')[0]}/original.png")) for n, k in kinds.items() if k == kind}
        if pairs:
            per_kind[kind] = round(len(pairs & said) / len(pairs), 3)
    return {"precision": round(len(right) / len(said), 3) if said else 1.0,
            "recall": round(len(right) / len(true), 3) if true else 1.0,
            "pairs_found": len(said), "pairs_true": len(true), "recall_per_kind": per_kind}


def _semcopy_groups(folder: Path, encoder_name: str | None, encoder_path: str | None) -> tuple[list[set[str]], float, float]:
    """(groups of gallery ids, threshold, seconds) of ``semcopy dedup`` with a new index of ``folder``."""
    from semcopy_lib.app import build_index, encoder_for_index
    from semcopy_lib.app.dedup import default_threshold, find_duplicates

    with tempfile.TemporaryDirectory() as tmp:
        index, _ = build_index(folder, Path(tmp) / "idx", encoder=encoder_name, encoder_path=encoder_path, progress=False)
        threshold = default_threshold(encoder_for_index(index), "copy")
        start = time.perf_counter()
        groups = find_duplicates(index, threshold)
        seconds = time.perf_counter() - start
        index.close()
    return [{m.gallery_id for m in g.members} for g in groups], threshold, seconds


def _phash_groups(folder: Path) -> list[set[str]]:
    """imagededup's PHash duplicates (default distance), as groups of ids relative to ``folder``."""
    import logging

    from imagededup.methods import PHash

    for name in list(logging.root.manager.loggerDict):  # its modules log every step, each at DEBUG
        if name.startswith("imagededup"):
            logging.getLogger(name).setLevel(logging.WARNING)
    hasher = PHash(verbose=False)
    encodings = hasher.encode_images(image_dir=str(folder), recursive=True)
    duplicates = hasher.find_duplicates(encoding_map=encodings)
    return [{Path(a).as_posix(), Path(b).as_posix()} for a, dups in duplicates.items() for b in dups]


def synthetic_grouping(n: int, bases: np.ndarray, threshold: float, seed: int = 0) -> dict:
    """Seconds to group ``n`` synthetic unit vectors, each one of ``bases`` (a real gallery's vectors)
    plus noise, as :mod:`~semcopy_lib.eval.speed` makes them, through the IVF index a gallery that size
    gets."""
    from semcopy_lib.app.dedup import find_duplicates
    from semcopy_lib.eval.speed import synthetic_vectors
    from semcopy_lib.index import GalleryIndex, NewItem

    vectors = synthetic_vectors(bases, n, seed=seed)
    dim = bases.shape[1]
    with tempfile.TemporaryDirectory() as tmp:
        index = GalleryIndex.create(Path(tmp) / "idx", {"name": "synthetic"}, dim)
        index.add([NewItem(f"s/{i}.png", "s", f"h{i}", (0, 0, 1, 1), "synthetic", "", v) for i, v in enumerate(vectors)])
        ivf = index.optimise()
        start = time.perf_counter()
        groups = find_duplicates(index, threshold)
        seconds = time.perf_counter() - start
        index.close()
    return {"vectors": n, "seconds": round(seconds, 1), "groups": len(groups), "index": ivf and ivf.get("index")}


def run_dedup_bench(images_dir: os.PathLike | str, groups: int = 40, distinct: int = 120, seed: int = 0,
                    splits: tuple[str, ...] = SPLITS, encoder_name: str | None = None,
                    encoder_path: str | None = None, baselines: bool = True) -> dict:
    """Per split: pairwise precision / recall of semcopy, PHash and the plain backbone (module doc)."""
    report: dict = {"splits": {}}
    for split in splits:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "gallery"
            truth, kinds = make_dedup_gallery(images_dir, folder, split, groups, distinct, seed)
            found, threshold, seconds = _semcopy_groups(folder, encoder_name, encoder_path)
            row = {"images": len(truth), "groups": groups,
                   "semcopy": {**pair_scores(found, truth, kinds), "threshold": round(threshold, 3),
                               "seconds": round(seconds, 2)}}
            if baselines:
                row["phash"] = pair_scores(_phash_groups(folder), truth, kinds)
                plain, plain_threshold, _ = _semcopy_groups(folder, "effnet-lite0", None)
                row["backbone"] = {**pair_scores(plain, truth, kinds), "threshold": round(plain_threshold, 3)}
        report["splits"][split] = row
    return report
