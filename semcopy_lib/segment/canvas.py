"""The plain canvas a drawing stands on: grow a box trimmed to a drawing out to its picture's edges.

Clip art is often a drawing in the middle of a white (or other plain) canvas. On a page of another
colour, a gradient hero section or a dark card, the picture is the whole canvas, but XY-cuts trim a
block of its uniform borders and return only the drawing. :func:`canvas_of` undoes that when it is
safe: the ring around the box is one plain colour, each side of the box is mostly that colour (the
drawing only touches it), and growing the box while every line stays that colour ends, on all four
sides, at a straight edge where the colour changes along the whole line (or at the image's border,
on two sides at most). A drawing on the page itself grows until text or another block stops it
part-way, so it stays as it is.

Blocks that touch (a drawing that XY-cuts split on the seams between its bands, a burger's bun, lettuce
and bun) are tried together as one box, in place of each.

The tolerance is per channel; :data:`CANVAS_TOLERANCES` are tried tight, then very tight: a white
canvas on an off-white page ends at its edge only at the very tight one (screenshots are PNG, so flat
colours are exact). Figures: docs/benchmarks.md, "Why the defaults are what they are".
"""

from __future__ import annotations

import numpy as np

from semcopy_lib.data.boxes import Box

#: A pixel is canvas when each of its channels is within this of the canvas colour's; the tolerances
#: tried in turn (:func:`~semcopy_lib.segment.analyse`).
CANVAS_TOLERANCE = 8
CANVAS_TOLERANCES = (8, 2)
#: The ring around the box: this share of it within the tolerance of its median colour.
RING_PLAIN = 0.9
#: Each side of the box: at least this share of canvas (a drawing trimmed to its bounding box).
OWN_SIDE = 0.5
#: The canvas grows past a line holding at least this share of canvas.
INSIDE = 0.9
#: A canvas side ends on an edge: one of the next 4 lines has at least this share off the canvas colour.
EDGE = 0.85
#: The grown box must be this much larger than the box and at most this share of the image.
MIN_GAIN = 1.15
CANVAS_MAX_SHARE = 0.5
#: The box is widened by this many pixels before it grows.
SLACK = 3
#: Blocks this close (pixels) touch: a drawing cut on a seam between its bands.
TOUCH_GAP = 4


class _Lines:
    """Share of canvas pixels along rows and columns of a box, from an integral image of the canvas mask."""

    def __init__(self, rgb: np.ndarray, colour: np.ndarray, tolerance: int):
        import cv2

        low = tuple(int(v) for v in np.clip(colour - tolerance, 0, 255))
        high = tuple(int(v) for v in np.clip(colour + tolerance, 0, 255))
        self.sums = cv2.integral(cv2.inRange(np.ascontiguousarray(rgb), low, high) // 255)

    def row(self, y: int, x0: int, x1: int) -> float:
        s = self.sums
        return float(s[y + 1, x1] - s[y, x1] - s[y + 1, x0] + s[y, x0]) / max(1, x1 - x0)

    def col(self, x: int, y0: int, y1: int) -> float:
        s = self.sums
        return float(s[y1, x + 1] - s[y0, x + 1] - s[y1, x] + s[y0, x]) / max(1, y1 - y0)


def _plain(pixels: np.ndarray, colour: np.ndarray, tolerance: int) -> np.ndarray:
    return (np.abs(pixels.astype(np.int16) - colour) <= tolerance).all(-1)


def canvas_of(rgb: np.ndarray, box: Box, masks: dict | None = None, tolerance: int = CANVAS_TOLERANCE) -> Box | None:
    """The plain canvas around the drawing in ``box`` of an (H, W, 3) uint8 image, or None (module doc).
    ``masks``: a dict kept between calls on the same image (its canvas masks by colour).

    Returns:
        (x, y, w, h) of the canvas, in the image's pixels.
    """
    height, width = rgb.shape[:2]
    x, y, w, h = box
    x0, y0, x1, y1 = x, y, x + w, y + h
    if w < 2 or h < 2:
        return None
    ring = [rgb[y0 - 2, x0:x1]] if y0 >= 2 else []
    ring += [rgb[y1 + 1, x0:x1]] if y1 + 1 < height else []
    ring += [rgb[y0:y1, x0 - 2]] if x0 >= 2 else []
    ring += [rgb[y0:y1, x1 + 1]] if x1 + 1 < width else []
    if not ring:
        return None
    around = np.concatenate(ring)
    colour = np.median(around, axis=0).astype(np.int16)
    if _plain(around, colour, tolerance).mean() < RING_PLAIN:
        return None
    sides = (rgb[y0, x0:x1], rgb[y1 - 1, x0:x1], rgb[y0:y1, x0], rgb[y0:y1, x1 - 1])
    if min(_plain(side, colour, tolerance).mean() for side in sides) < OWN_SIDE:
        return None  # a picture of its own (or a card around one), not a drawing trimmed to its box
    masks = {} if masks is None else masks
    key = (*(int(v) for v in colour), tolerance)
    if key not in masks:
        masks[key] = _Lines(rgb, colour, tolerance)
    lines = masks[key]
    # boxes measured at work scale may end a pixel or two inside the drawing's anti-aliased rim
    x0, y0, x1, y1 = max(0, x0 - SLACK), max(0, y0 - SLACK), min(width, x1 + SLACK), min(height, y1 + SLACK)
    for _ in range(3):  # each side grows; the others' new extent may let it grow further
        start = (x0, y0, x1, y1)
        while y0 > 0 and lines.row(y0 - 1, x0, x1) >= INSIDE:
            y0 -= 1
        while y1 < height and lines.row(y1, x0, x1) >= INSIDE:
            y1 += 1
        while x0 > 0 and lines.col(x0 - 1, y0, y1) >= INSIDE:
            x0 -= 1
        while x1 < width and lines.col(x1, y0, y1) >= INSIDE:
            x1 += 1
        if (x0, y0, x1, y1) == start:
            break
    ends = (
        y0 == 0 or max(1 - lines.row(y0 - k, x0, x1) for k in range(1, 5) if y0 - k >= 0) >= EDGE,
        y1 == height or max(1 - lines.row(y1 + k, x0, x1) for k in range(4) if y1 + k < height) >= EDGE,
        x0 == 0 or max(1 - lines.col(x0 - k, y0, y1) for k in range(1, 5) if x0 - k >= 0) >= EDGE,
        x1 == width or max(1 - lines.col(x1 + k, y0, y1) for k in range(4) if x1 + k < width) >= EDGE,
    )
    borders = (x0 == 0) + (y0 == 0) + (x1 == width) + (y1 == height)
    area = (x1 - x0) * (y1 - y0)
    if not all(ends) or borders > 2 or area < MIN_GAIN * w * h or area > CANVAS_MAX_SHARE * width * height:
        return None
    return (x0, y0, x1 - x0, y1 - y0)


def union(boxes: list[Box]) -> Box:
    """The bounding box of (x, y, w, h) boxes."""
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    return (x0, y0, max(b[0] + b[2] for b in boxes) - x0, max(b[1] + b[3] for b in boxes) - y0)


def touching_groups(boxes: list[Box], gap: int = TOUCH_GAP) -> list[list[Box]]:
    """Groups of two or more boxes chained by touching: within ``gap`` pixels of each other along one
    axis (or overlapping) while overlapping along the other by half the shorter box."""

    def touch(a: Box, b: Box) -> bool:
        for i in (0, 1):
            j = 1 - i
            apart = max(a[i], b[i]) - min(a[i] + a[i + 2], b[i] + b[i + 2])  # < 0: they overlap along i
            overlap = min(a[j] + a[j + 2], b[j] + b[j + 2]) - max(a[j], b[j])
            if apart <= gap and overlap >= 0.5 * min(a[j + 2], b[j + 2]):
                return True
        return False

    groups: list[list[Box]] = []
    for box in boxes:
        joined = [g for g in groups if any(touch(box, other) for other in g)]
        merged = [box] + [b for g in joined for b in g]
        groups = [g for g in groups if g not in joined] + [merged]
    return [g for g in groups if len(g) > 1]
