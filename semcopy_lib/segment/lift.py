"""A region's subject lifted onto white: the pixels of the background around it replaced.

A drawing pasted on a photo, cropped to its box, still shows the photo wherever the drawing is not
(between its limbs, around a round shape), while its gallery picture shows white there. The subject is
separated from what surrounds it, given the box with a margin of the picture around it, by GrabCut
(OpenCV: colours alone, the margin certain background) and by the trained subject matte
(:mod:`semcopy_lib.segment.matte`); the crop with everything else painted white is one more view of
the region for each (:class:`~semcopy_lib.query.config.QueryConfig`'s ``lift``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from semcopy_lib.data.boxes import Box
from semcopy_lib.segment.matte import around, load_matte, subject_probabilities


#: How a subject is told from its surroundings (:attr:`LiftConfig.methods`).
METHODS = ("grabcut", "matte")


@dataclass(frozen=True)
class LiftConfig:
    """Lifting a region's subject onto white (:func:`lifted_views`).

    Attributes:
        kinds: the region kinds that get lifted views ((): none); subjects, what is pasted on a picture.
        methods: one view each: ``"grabcut"`` (OpenCV's GrabCut: colours, the margin certain background)
            and ``"matte"`` (the trained subject matte, where its weights are installed). They fail on
            different subjects (GrabCut where the photo has the drawing's colours, the matte on lines
            thinner than its 64 px resolve), and a region's hits are the best of its views'.
        threshold: a pixel is the subject where the matte gives it at least this probability.
        side: GrabCut separates the box and its margin at most this large (its cost grows with pixels).
        iterations: GrabCut's rounds of refitting its colour models.
        margin: the picture around the box, as a share of the box's size on each side, that either
            method sees beside the box (GrabCut: as certain background).
        min_share, max_share: a subject covering less or more of its box than this is no separation (a
            crop that is all background or all subject): no lifted view.
    """

    kinds: tuple[str, ...] = ("subject",)
    methods: tuple[str, ...] = METHODS
    threshold: float = 0.5
    side: int = 96
    iterations: int = 2
    margin: float = 0.1
    min_share: float = 0.05
    max_share: float = 0.97

    def __post_init__(self):
        if unknown := [m for m in self.methods if m not in METHODS]:
            raise ValueError(f"methods: {', '.join(map(repr, unknown))} not among {', '.join(METHODS)}")


def lifted(image: Image.Image, box: Box, config: LiftConfig = LiftConfig(), method: str = "grabcut") -> Image.Image | None:
    """The crop of ``box`` (x, y, w, h) of ``image`` (RGB) with what ``method`` finds not to be its subject
    painted white, the crop's size; None when it finds no subject in the box, or nearly only subject."""
    views = lifted_views([(image, box)], replace(config, methods=(method,)))[0]
    return views[0] if views else None


def lifted_views(jobs: list[tuple[Image.Image, Box]], config: LiftConfig = LiftConfig(),
                 workers: int = 1) -> list[list[Image.Image]]:
    """For each (image, box), its lifted view by each of ``config.methods`` that separates a subject: the
    matte's in batches, GrabCut's on ``workers`` threads (it releases the GIL)."""
    found: list[list[np.ndarray | None]] = []
    for method in config.methods:
        if method == "matte":
            found.append(_matte(jobs, config))
        elif workers > 1 and len(jobs) > 1:
            with ThreadPoolExecutor(max_workers=min(len(jobs), workers)) as pool:
                found.append(list(pool.map(lambda job: _grabcut(*job, config), jobs)))
        else:
            found.append([_grabcut(image, box, config) for image, box in jobs])
    return [[view for masks in found if (view := _painted(image, box, masks[i], config)) is not None]
            for i, (image, box) in enumerate(jobs)]


def _matte(jobs: list[tuple[Image.Image, Box]], config: LiftConfig) -> list[np.ndarray | None]:
    """(h, w) bool of each box: the pixels the matte gives ``config.threshold`` or more; all None without
    its weights."""
    net = load_matte()
    if net is None:
        return [None] * len(jobs)
    usable = [i for i, (_, box) in enumerate(jobs) if box[2] >= 2 and box[3] >= 2]
    probs = dict(zip(usable, subject_probabilities(net, [jobs[i] for i in usable], config.margin)))
    return [probs[i] >= config.threshold if i in probs else None for i in range(len(jobs))]


def _painted(image: Image.Image, box: Box, subject: np.ndarray | None, config: LiftConfig) -> Image.Image | None:
    """The crop of ``box`` with the pixels outside ``subject`` ((h, w) bool) painted white; None when
    ``subject`` is None or covers a share of the box outside ``config.min_share`` … ``max_share``."""
    if subject is None or not config.min_share <= subject.mean() <= config.max_share:
        return None
    x, y, w, h = box
    pixels = np.array(image.crop((x, y, x + w, y + h)).convert("RGB"))
    pixels[~subject] = 255
    return Image.fromarray(pixels)


def _grabcut(image: Image.Image, box: Box, config: LiftConfig) -> np.ndarray | None:
    """(h, w) bool: the pixels of ``box`` that GrabCut, told that the margin around it is background, finds
    to be the subject; None when it cannot separate them."""
    import cv2

    x, y, w, h = box
    if w < 2 or h < 2:
        return None
    x0, y0, x1, y1 = around(image.size, box, config.margin)
    crop = np.asarray(image.crop((x0, y0, x1, y1)).convert("RGB"))
    scale = min(1.0, config.side / max(crop.shape[:2]))
    small = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))),
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
    return cv2.resize(subject, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)[y - y0:y - y0 + h, x - x0:x - x0 + w] > 127
