"""When two gallery images are one picture to a benchmark.

A clip-art library holds the same drawing under several names, series that differ in a detail (puzzle
pieces, stars of many points that draw one ring) and left and right versions of one drawing, which the
benchmarks themselves call copies (``mirror``). A hit of such a twin is reported beside the strict
figure (the hidden file itself), never instead of it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np
from PIL import Image

from semcopy_lib.data import ImageLoadError, load_image

#: Two pictures whose 32-px greyscale versions differ by less than this many levels (of 255) on average,
#: as they are or one mirrored, are one picture to the benchmark: using both in one benchmark would
#: make right answers count as wrong (``bench dedup``), and finding either is finding the picture.
SAME_PICTURE_LEVELS = 12.0

#: The side a gallery file is decoded at for its print (a print is 32 px).
PRINT_SIDE = 256


def picture_print(image: Image.Image) -> np.ndarray:
    """``image`` as (32, 32) float32 grey levels, what :func:`same_picture` compares."""
    return np.asarray(image.convert("RGBA").resize((32, 32)).convert("L"), dtype=np.float32)


def same_picture(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two :func:`picture_print` are the same picture, or one the other's mirror image
    (:data:`SAME_PICTURE_LEVELS`)."""
    return bool(min(np.abs(a - b).mean(), np.abs(a[:, ::-1] - b).mean()) < SAME_PICTURE_LEVELS)


class SamePictures:
    """``same(a, b)``: whether gallery ids ``a`` and ``b`` are one picture: the same id, byte-identical
    files (``sha256`` by gallery id, when given), or :func:`same_picture` of their files' prints (each
    file read once, when first asked; a file that cannot be read is only itself).

    Args:
        images_dir: the folder the gallery ids are relative to.
        sha256: each gallery id's file digest (the index's records), optional.
    """

    def __init__(self, images_dir: os.PathLike | str, sha256: Mapping[str, str] | None = None):
        self.images_dir = Path(images_dir)
        self.sha256 = dict(sha256 or {})
        self._prints: dict[str, np.ndarray | None] = {}

    def _print(self, gallery_id: str) -> np.ndarray | None:
        if gallery_id not in self._prints:
            try:
                image = load_image(self.images_dir / gallery_id, max_side=PRINT_SIDE)  # on white
                self._prints[gallery_id] = picture_print(image)
            except ImageLoadError:
                self._prints[gallery_id] = None
        return self._prints[gallery_id]

    def __call__(self, a: str, b: str) -> bool:
        if a == b:
            return True
        digest = self.sha256.get(a)
        if digest is not None and digest == self.sha256.get(b):
            return True
        pa, pb = self._print(a), self._print(b)
        return pa is not None and pb is not None and same_picture(pa, pb)
