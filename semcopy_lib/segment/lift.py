"""A region's subject lifted onto white: the pixels of the background around it replaced.

A drawing pasted on a photo, cropped to its box, still shows the photo wherever the drawing is not
(between its limbs, around a round shape), while its gallery picture shows white there. GrabCut
(OpenCV), given the box with a margin of the picture around it as certain background, separates
the subject from what surrounds it by their colours; the crop with everything else painted white is
one more view of the region (:class:`~semcopy_lib.query.config.QueryConfig`'s ``lift``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from semcopy_lib.data.boxes import Box


@dataclass(frozen=True)
class LiftConfig:
    """Lifting a region's subject onto white (:func:`lifted`).

    Attributes:
        kinds: the region kinds that get a lifted view ((): none); subjects, what is pasted on a picture.
        side: the box and its margin are separated at most this large (GrabCut's cost grows with pixels).
        iterations: GrabCut's rounds of refitting its colour models.
        margin: the picture around the box, as a share of the box's size on each side, that is
            certainly background (the colours GrabCut learns the background from).
        min_share, max_share: a subject covering less or more of its box than this is no separation (a
            crop that is all background or all subject): no lifted view.
    """

    kinds: tuple[str, ...] = ("subject",)
    side: int = 96
    iterations: int = 2
    margin: float = 0.1
    min_share: float = 0.05
    max_share: float = 0.97


def lifted(image: Image.Image, box: Box, config: LiftConfig = LiftConfig()) -> Image.Image | None:
    """The crop of ``box`` (x, y, w, h) of ``image`` (RGB) with what GrabCut finds to be background
    painted white, the crop's size; None when it finds no subject in the box, or nearly only subject."""
    import cv2

    x, y, w, h = box
    if w < 2 or h < 2:
        return None
    mx, my = int(w * config.margin) + 1, int(h * config.margin) + 1
    x0, y0 = max(0, x - mx), max(0, y - my)
    x1, y1 = min(image.width, x + w + mx), min(image.height, y + h + my)
    around = np.asarray(image.crop((x0, y0, x1, y1)).convert("RGB"))
    scale = min(1.0, config.side / max(around.shape[:2]))
    small = cv2.resize(around, (max(1, round(around.shape[1] * scale)), max(1, round(around.shape[0] * scale))),
                       interpolation=cv2.INTER_AREA)
    # GrabCut needs background on some side of its rectangle: a box at the picture's edges gets a 1-px rim
    rx, ry = max(1, round((x - x0) * scale)), max(1, round((y - y0) * scale))
    rw = min(round(w * scale), small.shape[1] - rx - 1)
    rh = min(round(h * scale), small.shape[0] - ry - 1)
    if rw < 2 or rh < 2:
        return None
    mask = np.zeros(small.shape[:2], np.uint8)
    cv2.setRNGSeed(0)  # GrabCut's colour models start from k-means: the same crop, the same view
    try:
        cv2.grabCut(cv2.cvtColor(small, cv2.COLOR_RGB2BGR), mask, (rx, ry, rw, rh), np.zeros((1, 65)), np.zeros((1, 65)),
                    config.iterations, cv2.GC_INIT_WITH_RECT)
    except cv2.error:  # too few pixels on one side for its colour models: no separation
        return None
    subject = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8) * 255
    subject = cv2.resize(subject, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)[y - y0:y - y0 + h, x - x0:x - x0 + w] > 127
    if not config.min_share <= subject.mean() <= config.max_share:
        return None
    pixels = around[y - y0:y - y0 + h, x - x0:x - x0 + w].copy()
    pixels[~subject] = 255
    return Image.fromarray(pixels)
