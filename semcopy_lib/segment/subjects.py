"""Where a drawn subject sits on a picture: clip art is smooth where a photo is grainy.

A clip-art subject pasted on a photograph keeps flat colour fields and clean gradients (a zero
discrete Laplacian), while the photograph around it has sensor grain and texture. Pixels whose
Laplacian is (nearly) zero, dense enough over a small neighbourhood, closed morphologically and
split into connected components, give the subject's box. Smooth parts touching two or more image
sides are a flat backdrop (a white page, a sky), not a subject; they are dropped before the closing.

The picture may itself be flat (a silhouette on white, a page): then everything is smooth, and a
shaded subject is what is *not* backdrop. Backdrop is a smooth area of one colour that reaches two
sides or covers a fifth of the picture; when it covers 30 % or more, the rest, closed, gives boxes too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from semcopy_lib.data.boxes import Box
from semcopy_lib.segment.layout import channel_sum

@dataclass(frozen=True)
class SubjectsConfig:
    """Thresholds of :func:`subject_boxes` (saved with an index as the query config's ``subjects``).

    Attributes:
        work_side: analysed at most this large, resized with nearest neighbours (keeps grain and flatness).
        smooth_laplacian: summed |Laplacian| over RGB at or under which a pixel is smooth.
        smooth_density: share of smooth pixels in a neighbourhood (1/40 of the shorter side) of a subject.
        close_fraction: closing kernel, of the shorter side: joins a drawing's parts across its outlines.
        min_area, max_area: a subject covers this share of the image at least / at most (a larger
            smooth part is the picture itself).
        pad: each side of a box grows by this share of its size (outlines, antialiasing).
        min_backdrop: share of the picture that flat backdrop must cover for "what is not backdrop" to count.
        backdrop_colour_share: a backdrop colour covers at least this share of the picture.
        big_flat: a one-colour smooth area this large is backdrop (a silhouette) even away from the sides.
        top: at most this many boxes, largest first.
    """

    work_side: int = 512
    smooth_laplacian: int = 2
    smooth_density: float = 0.5
    close_fraction: float = 1 / 15
    min_area: float = 0.01
    max_area: float = 0.7
    pad: float = 0.04
    min_backdrop: float = 0.3
    backdrop_colour_share: float = 0.03
    big_flat: float = 0.2
    top: int = 3


def subject_boxes(image: Image.Image, config: SubjectsConfig = SubjectsConfig()) -> list[Box]:
    """Boxes (x, y, w, h) in ``image``'s pixels of up to ``config.top`` subjects, largest first.

    Two cues, both kept: smooth parts of a grainy photo, and, when most of the picture is a flat
    backdrop (a white page, a silhouette on white), what is not backdrop.
    """
    import cv2

    scale = min(1.0, config.work_side / max(image.size))
    small = image.convert("RGB")
    if scale < 1.0:
        small = small.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.NEAREST)
    rgb = np.asarray(small).astype(np.int16)
    height, width = rgb.shape[:2]
    if min(height, width) < 16:
        return []
    laplacian = channel_sum(np.abs(cv2.Laplacian(rgb, cv2.CV_16S, ksize=1)))
    smooth = (laplacian <= config.smooth_laplacian).astype(np.float32)
    k = max(3, min(height, width) // 40)
    mask = (cv2.blur(smooth, (k, k)) > config.smooth_density).astype(np.uint8)
    closing = np.ones((max(3, round(min(height, width) * config.close_fraction)),) * 2, np.uint8)
    found = _components(cv2.morphologyEx(_without_side_parts(mask), cv2.MORPH_CLOSE, closing), config)
    backdrop = _flat_backdrop(rgb, mask, config)
    if backdrop.mean() >= config.min_backdrop:
        rest = 1 - cv2.dilate(backdrop, np.ones((3, 3), np.uint8))
        rest = cv2.morphologyEx(rest, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))  # outlines of the backdrop's shapes
        found += _components(cv2.morphologyEx(rest, cv2.MORPH_CLOSE, closing), config)
    boxes = []
    for _, (x, y, w, h) in sorted(found, reverse=True)[: config.top]:
        px, py = int(w * config.pad), int(h * config.pad)
        x0, y0 = max(0, x - px), max(0, y - py)
        x1, y1 = min(width, x + w + px), min(height, y + h + py)
        boxes.append((round(x0 / scale), round(y0 / scale), round((x1 - x0) / scale), round((y1 - y0) / scale)))
    return boxes


def _without_side_parts(mask: np.ndarray) -> np.ndarray:
    """``mask`` less its connected parts that touch two or more sides (a flat sky or page, not a subject)."""
    import cv2

    height, width = mask.shape
    out = mask.copy()
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    for i, (x, y, w, h, _) in enumerate(stats[1:count].tolist(), start=1):
        if _sides(x, y, w, h, width, height) >= 2:
            out[labels == i] = 0
    return out


def _flat_backdrop(rgb: np.ndarray, smooth: np.ndarray, config: SubjectsConfig) -> np.ndarray:
    """(H, W) uint8 mask of smooth one-colour areas (8 levels a channel) that reach two sides or are big."""
    import cv2

    height, width = smooth.shape
    colour = (rgb[..., 0] // 32) * 64 + (rgb[..., 1] // 32) * 8 + rgb[..., 2] // 32
    counts = np.bincount(colour[smooth > 0].ravel(), minlength=512)
    backdrop = np.zeros_like(smooth)
    for value in np.flatnonzero(counts >= config.backdrop_colour_share * width * height):
        count, labels, stats, _ = cv2.connectedComponentsWithStats(((colour == value) & (smooth > 0)).astype(np.uint8))
        for i, (x, y, w, h, area) in enumerate(stats[1:count].tolist(), start=1):
            if _sides(x, y, w, h, width, height) >= 2 or area >= config.big_flat * width * height:
                backdrop[labels == i] = 1
    return backdrop


def _components(mask: np.ndarray, config: SubjectsConfig) -> list[tuple[int, Box]]:
    """(area, box) of the connected parts of ``mask`` that can be a subject: not tiny, not (nearly) all of
    the picture, touching at most one side."""
    import cv2

    height, width = mask.shape
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    return [(area, (x, y, w, h)) for x, y, w, h, area in stats[1:count].tolist()
            if area >= config.min_area * width * height and w * h <= config.max_area * width * height
            and _sides(x, y, w, h, width, height) < 2]


def _sides(x: int, y: int, w: int, h: int, width: int, height: int) -> int:
    """How many sides of the image the box touches."""
    return (x <= 1) + (y <= 1) + (x + w >= width - 1) + (y + h >= height - 1)
