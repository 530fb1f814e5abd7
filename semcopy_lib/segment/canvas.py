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

The tolerance is per channel; :attr:`CanvasConfig.tolerances` are tried tight, then very tight: a white
canvas on an off-white page ends at its edge only at the very tight one (screenshots are PNG, so flat
colours are exact). Figures: docs/benchmarks.md, "Why the defaults are what they are".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semcopy_lib.data.boxes import Box

@dataclass(frozen=True)
class CanvasConfig:
    """Thresholds of :func:`canvas_of`; saved with an index as the query config's ``layout.canvas``.

    Attributes:
        tolerances: a pixel is canvas when each of its channels is within this of the canvas colour's;
            the tolerances tried in turn, tight then very tight (module doc).
        ring_plain: the ring around the box: this share of it within the tolerance of its median colour.
        own_side: each side of the box: at least this share of canvas (a drawing trimmed to its
            bounding box).
        inside: the canvas grows past a line holding at least this share of canvas.
        edge: a canvas side ends on an edge: one of the next 4 lines has at least this share off the
            canvas colour.
        min_gain, max_share: the grown box must be this much larger than the box and at most this
            share of the image.
        slack: the box is widened by this many pixels before it grows.
        touch_gap: blocks this close (pixels) touch: a drawing cut on a seam between its bands.
    """

    tolerances: tuple[int, ...] = (8, 2)
    ring_plain: float = 0.9
    own_side: float = 0.5
    inside: float = 0.9
    edge: float = 0.85
    min_gain: float = 1.15
    max_share: float = 0.5
    slack: int = 3
    touch_gap: int = 4


#: The defaults, for callers without a config of their own.
CANVAS = CanvasConfig()

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


def canvas_of(rgb: np.ndarray, box: Box, masks: dict | None = None, tolerance: int = CANVAS.tolerances[0],
              config: CanvasConfig = CANVAS) -> Box | None:
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
    if _plain(around, colour, tolerance).mean() < config.ring_plain:
        return None
    sides = (rgb[y0, x0:x1], rgb[y1 - 1, x0:x1], rgb[y0:y1, x0], rgb[y0:y1, x1 - 1])
    if min(_plain(side, colour, tolerance).mean() for side in sides) < config.own_side:
        return None  # a picture of its own (or a card around one), not a drawing trimmed to its box
    masks = {} if masks is None else masks
    key = (*(int(v) for v in colour), tolerance)
    if key not in masks:
        masks[key] = _Lines(rgb, colour, tolerance)
    lines = masks[key]
    # boxes measured at work scale may end a pixel or two inside the drawing's anti-aliased rim
    pad = config.slack
    x0, y0, x1, y1 = max(0, x0 - pad), max(0, y0 - pad), min(width, x1 + pad), min(height, y1 + pad)
    for _ in range(3):  # each side grows; the others' new extent may let it grow further
        start = (x0, y0, x1, y1)
        while y0 > 0 and lines.row(y0 - 1, x0, x1) >= config.inside:
            y0 -= 1
        while y1 < height and lines.row(y1, x0, x1) >= config.inside:
            y1 += 1
        while x0 > 0 and lines.col(x0 - 1, y0, y1) >= config.inside:
            x0 -= 1
        while x1 < width and lines.col(x1, y0, y1) >= config.inside:
            x1 += 1
        if (x0, y0, x1, y1) == start:
            break
    ends = (
        y0 == 0 or max(1 - lines.row(y0 - k, x0, x1) for k in range(1, 5) if y0 - k >= 0) >= config.edge,
        y1 == height or max(1 - lines.row(y1 + k, x0, x1) for k in range(4) if y1 + k < height) >= config.edge,
        x0 == 0 or max(1 - lines.col(x0 - k, y0, y1) for k in range(1, 5) if x0 - k >= 0) >= config.edge,
        x1 == width or max(1 - lines.col(x1 + k, y0, y1) for k in range(4) if x1 + k < width) >= config.edge,
    )
    borders = (x0 == 0) + (y0 == 0) + (x1 == width) + (y1 == height)
    area = (x1 - x0) * (y1 - y0)
    if not all(ends) or borders > 2 or area < config.min_gain * w * h or area > config.max_share * width * height:
        return None
    return (x0, y0, x1 - x0, y1 - y0)


def union(boxes: list[Box]) -> Box:
    """The bounding box of (x, y, w, h) boxes."""
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    return (x0, y0, max(b[0] + b[2] for b in boxes) - x0, max(b[1] + b[3] for b in boxes) - y0)


def touching_groups(boxes: list[Box], gap: int = CANVAS.touch_gap) -> list[list[Box]]:
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
