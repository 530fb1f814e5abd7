"""Where a drawn subject sits on a picture: clip art is smooth where a photo is grainy.

A clip-art subject pasted on a photograph keeps flat colour fields and clean gradients (a zero
discrete Laplacian), while the photograph around it has sensor grain and texture. Pixels whose
Laplacian is (nearly) zero, dense enough over a small neighbourhood, closed morphologically and
split into connected components, give the subject's box. Smooth parts touching two or more image
sides are a flat backdrop (a white page, a sky), not a subject; they are dropped before the closing.

The picture may itself be flat (a silhouette on white, a page): then everything is smooth, and a
shaded subject is what is *not* backdrop. Backdrop is a smooth area of one colour that reaches two
sides or covers a fifth of the picture; when it covers 30 % or more, the rest, closed, gives boxes too.

On 100 clip-art subjects pasted with their transparency on the 12 pip-package photos outside a
548-image gallery, a box at IoU >= 0.7 to the drawn content was among the boxes for 0.50 with the
first cue alone and 0.55 with both (the horse silhouette and the scanned page hold 20 of them);
R@1 with regions (effnet-lite0-semcopy) 0.52 -> 0.53. Cropping each query to the drawn content gives
0.84, to the pasted image's box 0.77: localisation is what is missing, mostly subjects with
photographic shading on grainy photos, tiny subjects, and pasted photographs (no drawing at all).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from semcopy_lib.data.boxes import Box
from semcopy_lib.segment.layout import channel_sum

WORK_SIDE = 512  # analysed at most this large, resized with nearest neighbours (keeps grain and flatness)
SMOOTH_LAPLACIAN = 2  # summed |Laplacian| over RGB at or under which a pixel is smooth
SMOOTH_DENSITY = 0.5  # share of smooth pixels in a neighbourhood (1/40 of the shorter side) of a subject
CLOSE_FRACTION = 1 / 15  # closing kernel, of the shorter side: joins a drawing's parts across its outlines
MIN_AREA = 0.01  # of the image
MAX_AREA = 0.7  # of the image; larger smooth parts are the picture itself
PAD = 0.04  # each side of a box grows by this share of its size (outlines, antialiasing)
MIN_BACKDROP = 0.3  # share of the picture that flat backdrop must cover for "what is not backdrop" to count
BACKDROP_COLOUR_SHARE = 0.03  # a backdrop colour covers at least this share of the picture
BIG_FLAT = 0.2  # a one-colour smooth area this large is backdrop (a silhouette) even away from the sides


def subject_boxes(image: Image.Image, top: int = 3) -> list[Box]:
    """Boxes (x, y, w, h) in ``image``'s pixels of up to ``top`` subjects, largest first.

    Two cues, both kept: smooth parts of a grainy photo, and, when most of the picture is a flat
    backdrop (a white page, a silhouette on white), what is not backdrop.
    """
    import cv2

    scale = min(1.0, WORK_SIDE / max(image.size))
    small = image.convert("RGB")
    if scale < 1.0:
        small = small.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.NEAREST)
    rgb = np.asarray(small).astype(np.int16)
    height, width = rgb.shape[:2]
    if min(height, width) < 16:
        return []
    laplacian = channel_sum(np.abs(cv2.Laplacian(rgb, cv2.CV_16S, ksize=1)))
    smooth = (laplacian <= SMOOTH_LAPLACIAN).astype(np.float32)
    k = max(3, min(height, width) // 40)
    mask = (cv2.blur(smooth, (k, k)) > SMOOTH_DENSITY).astype(np.uint8)
    closing = np.ones((max(3, round(min(height, width) * CLOSE_FRACTION)),) * 2, np.uint8)
    found = _components(cv2.morphologyEx(_without_side_parts(mask), cv2.MORPH_CLOSE, closing))
    backdrop = _flat_backdrop(rgb, mask)
    if backdrop.mean() >= MIN_BACKDROP:
        rest = 1 - cv2.dilate(backdrop, np.ones((3, 3), np.uint8))
        rest = cv2.morphologyEx(rest, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))  # outlines of the backdrop's shapes
        found += _components(cv2.morphologyEx(rest, cv2.MORPH_CLOSE, closing))
    boxes = []
    for _, (x, y, w, h) in sorted(found, reverse=True)[:top]:
        px, py = int(w * PAD), int(h * PAD)
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


def _flat_backdrop(rgb: np.ndarray, smooth: np.ndarray) -> np.ndarray:
    """(H, W) uint8 mask of smooth one-colour areas (8 levels a channel) that reach two sides or are big."""
    import cv2

    height, width = smooth.shape
    colour = (rgb[..., 0] // 32) * 64 + (rgb[..., 1] // 32) * 8 + rgb[..., 2] // 32
    counts = np.bincount(colour[smooth > 0].ravel(), minlength=512)
    backdrop = np.zeros_like(smooth)
    for value in np.flatnonzero(counts >= BACKDROP_COLOUR_SHARE * width * height):
        count, labels, stats, _ = cv2.connectedComponentsWithStats(((colour == value) & (smooth > 0)).astype(np.uint8))
        for i, (x, y, w, h, area) in enumerate(stats[1:count].tolist(), start=1):
            if _sides(x, y, w, h, width, height) >= 2 or area >= BIG_FLAT * width * height:
                backdrop[labels == i] = 1
    return backdrop


def _components(mask: np.ndarray) -> list[tuple[int, Box]]:
    """(area, box) of the connected parts of ``mask`` that can be a subject: not tiny, not (nearly) all of
    the picture, touching at most one side."""
    import cv2

    height, width = mask.shape
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    return [(area, (x, y, w, h)) for x, y, w, h, area in stats[1:count].tolist()
            if area >= MIN_AREA * width * height and w * h <= MAX_AREA * width * height
            and _sides(x, y, w, h, width, height) < 2]


def _sides(x: int, y: int, w: int, h: int, width: int, height: int) -> int:
    """How many sides of the image the box touches."""
    return (x <= 1) + (y <= 1) + (x + w >= width - 1) + (y + h >= height - 1)
