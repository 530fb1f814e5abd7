"""A picture's box without the caption stacked under it.

A figure, a sidebar card or an infobox is framed as one block: the picture, then a caption or a table
of short lines on the same background. XY-cuts, edges and parts off the page find the frame; the
picture is its upper part (a drawing on a white canvas in a white figure shows no edge of its own).
Rows of the box (inside a margin for its frame) with no pixel off the box's background split it into
bands; thin bands at the bottom (each at most ``TEXT_LINE`` of the box's height: lines of text, the
rules of a table), each close to the next (``LINE_GAP``), are the caption, and the box ends just above
the first of them, when what is left is at least ``PICTURE`` of the box.

Its figures on the regions benchmark: docs/benchmarks.md.
"""

from __future__ import annotations

import numpy as np

from semcopy_lib.data.boxes import Box
from semcopy_lib.segment.parts import off_colour, page_colour

#: A band of rows at most this share of the box's height is a line of text (or a rule).
TEXT_LINE = 0.06
#: The picture left above the caption is at least this share of the box's height.
PICTURE = 0.4
#: Pixels inside each side of the box left out: its frame and padding.
FRAME = 4
#: A row with at most this share of its pixels off the background is empty.
EMPTY_ROW = 0.005
#: Two lines of a caption are at most this many times the taller one's height apart.
LINE_GAP = 1.5
#: The picture ends this many pixels above its caption (a figure's margin).
GAP = 2


def without_caption(rgb: np.ndarray, box: Box) -> Box:
    """``box`` (x, y, w, h) of an (H, W, 3) uint8 image ended above the caption under its picture;
    ``box`` itself when it has none."""
    import cv2

    x, y, w, h = box
    inner = rgb[y + FRAME : y + h - FRAME, x + FRAME : x + w - FRAME]
    if min(inner.shape[:2]) < 5 * FRAME:
        return box
    ring = np.concatenate([inner[0], inner[-1], inner[:, 0], inner[:, -1]])
    off = cv2.reduce(off_colour(inner, page_colour(ring)), 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S)[:, 0]
    full = np.r_[False, off > EMPTY_ROW * inner.shape[1], False]
    edges = np.flatnonzero(full[1:] != full[:-1])
    bands = edges.reshape(-1, 2)  # [start, end) of each run of rows with something on them
    line = TEXT_LINE * h
    heights = bands[:, 1] - bands[:, 0]
    n = len(bands)
    # lines of the caption follow each other closely; a thin band far above it (a drawing's shadow)
    # belongs to the picture
    while n > 1 and heights[n - 1] <= line and (
            n == len(bands) or bands[n, 0] - bands[n - 1, 1] <= LINE_GAP * max(heights[n - 1], heights[n])):
        n -= 1
    if n == len(bands):
        return box
    end = max(int(bands[n - 1, 1]), int(bands[n, 0]) - GAP)
    if end < PICTURE * inner.shape[0]:
        return box
    return (x, y, w, end + FRAME)
