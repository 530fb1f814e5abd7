"""A picture's box without the caption stacked under it.

A figure, a sidebar card or an infobox is framed as one block: the picture, then a caption or a table
of short lines on the same background. XY-cuts, edges and parts off the page find the frame; the
picture is its upper part (a drawing on a white canvas in a white figure shows no edge of its own).
Rows of the box (inside a margin for its frame) with no pixel off the box's background split it into
bands; thin bands at the bottom (each at most ``text_line`` of the box's height: lines of text, the
rules of a table), each close to the next (``line_gap``), are the caption, and the box ends just above
the first of them, when what is left is at least ``picture`` of the box.

Its figures on the regions benchmark: docs/benchmarks.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semcopy_lib.data.boxes import Box
from semcopy_lib.segment.parts import off_colour, page_colour

@dataclass(frozen=True)
class CaptionConfig:
    """Thresholds of :func:`without_caption`; saved with an index as the query config's ``layout.caption``.

    Attributes:
        text_line: a band of rows at most this share of the box's height is a line of text (or a rule).
        picture: the picture left above the caption is at least this share of the box's height.
        frame: pixels inside each side of the box left out: its frame and padding.
        empty_row: a row with at most this share of its pixels off the background is empty.
        line_gap: two lines of a caption are at most this many times the taller one's height apart.
        gap: the picture ends this many pixels above its caption (a figure's margin).
    """

    text_line: float = 0.06
    picture: float = 0.4
    frame: int = 4
    empty_row: float = 0.005
    line_gap: float = 1.5
    gap: int = 2

def without_caption(rgb: np.ndarray, box: Box, config: CaptionConfig = CaptionConfig()) -> Box:
    """``box`` (x, y, w, h) of an (H, W, 3) uint8 image ended above the caption under its picture;
    ``box`` itself when it has none."""
    import cv2

    x, y, w, h = box
    inner = rgb[y + config.frame : y + h - config.frame, x + config.frame : x + w - config.frame]
    if min(inner.shape[:2]) < 5 * config.frame:
        return box
    ring = np.concatenate([inner[0], inner[-1], inner[:, 0], inner[:, -1]])
    off = cv2.reduce(off_colour(inner, page_colour(ring)), 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S)[:, 0]
    full = np.r_[False, off > config.empty_row * inner.shape[1], False]
    edges = np.flatnonzero(full[1:] != full[:-1])
    bands = edges.reshape(-1, 2)  # [start, end) of each run of rows with something on them
    line = config.text_line * h
    heights = bands[:, 1] - bands[:, 0]
    n = len(bands)
    # lines of the caption follow each other closely; a thin band far above it (a drawing's shadow)
    # belongs to the picture
    while n > 1 and heights[n - 1] <= line and (
            n == len(bands) or bands[n, 0] - bands[n - 1, 1] <= config.line_gap * max(heights[n - 1], heights[n])):
        n -= 1
    if n == len(bands):
        return box
    end = max(int(bands[n - 1, 1]), int(bands[n, 0]) - config.gap)
    if end < config.picture * inner.shape[0]:
        return box
    return (x, y, w, end + config.frame)
