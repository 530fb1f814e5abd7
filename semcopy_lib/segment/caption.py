"""A picture's box without the caption stacked under it.

A figure, a sidebar card or an infobox is framed as one block: the picture, then a caption or a table
of short lines on the same background. XY-cuts, edges and parts off the page find the frame; the
picture is its upper part (a drawing on a white canvas in a white figure shows no edge of its own).
Rows of the box (inside a margin for its frame) with no pixel off the box's background split it into
bands; thin bands at the bottom (each at most ``text_line`` of the box's height: lines of text, the
rules of a table), each close to the next (``line_gap``), are the caption, and the box ends just above
the first of them, when what is left is at least ``picture`` of the box.

A box found round a card by its edges holds the card's border (rounded out past it from a smaller
scale): the border reaches every row, so it is left out of the bands, and the picture is what it holds
above the caption, and also what is off the card's colour there when the card pads that evenly.

Its figures on the regions benchmark: docs/benchmarks.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semcopy_lib.data.boxes import Box
from semcopy_lib.segment.parts import PARTS, off_colour, page_colour

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
        rule_width, rule_share: a part off the background at most ``rule_width`` pixels thick that spans
            at least ``rule_share`` of the box across or down, along the sides of its own box, is a line
            (a rule, the edge of a picture), not content; across and down, a frame (a card's border).
        even_padding: inside a frame, the picture is cut to what is off the card's colour when that
            leaves paddings (left, top, right) within this many pixels of each other (cards pad evenly).
        frames: look for a card's frame inside the box (off: the box's margin is its only frame).
    """

    text_line: float = 0.06
    picture: float = 0.4
    frame: int = 4
    empty_row: float = 0.005
    line_gap: float = 1.5
    gap: int = 2
    rule_width: int = 3
    rule_share: float = 0.9
    even_padding: int = 3
    frames: bool = True

def without_caption(rgb: np.ndarray, box: Box, config: CaptionConfig = CaptionConfig()) -> list[Box]:
    """The picture of ``box`` (x, y, w, h) of an (H, W, 3) uint8 image: ``[box]`` ended above the caption
    under its picture, or, when a card's frame lies inside it, what the frame holds above the caption,
    preceded by what is off the card's colour there when that leaves an even padding (both are tried: a
    drawing on a white canvas in a white card is either); ``[box]`` when it has neither."""
    x, y, w, h = box
    inner = rgb[y + config.frame : y + h - config.frame, x + config.frame : x + w - config.frame]
    if min(inner.shape[:2]) < 5 * config.frame:
        return [box]
    ring = np.concatenate([inner[0], inner[-1], inner[:, 0], inner[:, -1]])
    colours = [page_colour(ring)]
    # a white picture filling most of a card's frame makes the ring white: the caption stands on the
    # card's colour, that of the box's last row
    bottom = page_colour(inner[-1:])
    if float(np.abs(bottom - colours[0]).sum()) > PARTS.off_page:
        colours.append(bottom)
    for colour in colours:
        # on the card's colour (not the ring's) what is off it is the picture itself, canvas included
        found = _above_caption(rgb[y : y + h, x : x + w], colour, box, config, trim=colour is not colours[0])
        if found != [box]:
            return found
    return [box]


def _above_caption(pixels: np.ndarray, colour: np.ndarray, box: Box, config: CaptionConfig,
                   trim: bool = False) -> list[Box]:
    """:func:`without_caption` of ``box``, whose (h, w, 3) pixels are ``pixels``, with ``colour`` (3,) as the
    background of its picture and caption; ``trim``: cut to what is off ``colour`` above a caption found
    (``colour`` is then the card's, not the picture's). Lines and frames are looked for in the whole box,
    the caption inside its margin (``config.frame``)."""
    import cv2

    x, y, w, h = box
    f = config.frame
    rows, cols = h - 2 * f, w - 2 * f  # inside the margin, where the caption is looked for
    off_whole = off_colour(pixels, colour)
    lines_out, frame, outer = _without_lines(off_whole, config) if config.frames else (off_whole, None, None)
    if outer == (0, 0, w, h):
        frame = None  # the box is the framed figure itself: its margin leaves the frame out
    content = lines_out[f : h - f, f : w - f]
    mask = content if frame is not None else off_whole[f : h - f, f : w - f]
    if frame is not None:  # in the margin's coordinates, clipped to it
        frame = (max(0, frame[0] - f), max(0, frame[1] - f), min(cols, frame[2] - f), min(rows, frame[3] - f))
    off = cv2.reduce(mask, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S)[:, 0]
    full = np.r_[False, off > config.empty_row * cols, False]
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
    end = rows  # the rows inside the margin that hold the picture
    if n < len(bands):
        cut = max(int(bands[n - 1, 1]), int(bands[n, 0]) - config.gap)
        end = cut if cut >= config.picture * rows else end
    picture = (heights[:n] > line).any()  # more than a line of text is left
    left, top = x + f, y + f
    tall = config.picture * rows  # the least height of a picture left
    if frame is not None and picture:
        # a card's frame lies inside the box: the picture is inside the frame, above the caption, and
        # may be what is off the card's colour there: when that leaves an even padding (else part of it
        # has the card's colour: a flag's white band on a white card)
        fx0, fy0, fx1, fy1 = frame
        fy1 = min(fy1, end)
        out = [(left + fx0, top + fy0, fx1 - fx0, fy1 - fy0)] if fx1 > fx0 and fy1 - fy0 >= tall else []
        cx, cy, cw, ch = cv2.boundingRect(np.ascontiguousarray(content[fy0:fy1, fx0:fx1]))  # what is off the card
        if out and cw:
            pads = (cx, cy, fx1 - fx0 - cx - cw)  # left, top, right
            cut = (left + fx0 + cx, top + fy0 + cy, cw, ch)
            if max(pads) - min(pads) <= config.even_padding and ch >= tall and cut != out[0]:
                out.insert(0, cut)
        if out:
            return out
    elif trim and picture and end < rows:
        cx, cy, cw, ch = cv2.boundingRect(np.ascontiguousarray(content[:end]))
        if cw and ch >= tall:
            return [(left + cx, top + cy, cw, ch)]
    return [box if end == rows else (x, y, w, end + f)]


def _without_lines(mask: np.ndarray, config: CaptionConfig) -> tuple[np.ndarray, tuple[int, int, int, int] | None,
                                                                   tuple[int, int, int, int] | None]:
    """An (H, W) 0/1 uint8 mask without its lines; what the largest line that is a frame holds inside its
    sides, and that frame's own box, each (x0, y0, x1, y1) (None if no frame). A line is a part
    (8-connected) no thicker than ``config.rule_width`` that spans at least ``config.rule_share`` of the
    mask across or down, with that share of its pixels along the sides of its own box (a rule at one
    side, the edge of a picture that fills the box, but not the outline of a drawing); a frame spans it
    across and down (a card's border with its rounded corners)."""
    import cv2

    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    h, w = mask.shape
    across = stats[:, 2] >= config.rule_share * w
    down = stats[:, 3] >= config.rule_share * h
    thin = stats[:, 4] <= config.rule_width * 2 * (stats[:, 2] + stats[:, 3])
    lines = []
    candidates = np.flatnonzero(thin & (across | down))
    for i in candidates[candidates > 0]:  # label 0: what is not off the colour
        x, y, bw, bh = stats[i, :4]
        own = labels[y : y + bh, x : x + bw] == i
        inside = own[config.rule_width : bh - config.rule_width, config.rule_width : bw - config.rule_width]
        if inside.sum() <= (1 - config.rule_share) * stats[i, 4]:
            lines.append(int(i))
    if not lines:
        return mask, None, None
    frames = [i for i in lines if across[i] and down[i]]
    frame = outer = None
    if frames:
        i = max(frames, key=lambda i: stats[i, 2] * stats[i, 3])
        x, y, bw, bh = (int(v) for v in stats[i, :4])
        own = labels[y : y + bh, x : x + bw] == i
        frame = (x + _inside(own[bh // 2]), y + _inside(own[:, bw // 2]),
                 x + bw - _inside(own[bh // 2, ::-1]), y + bh - _inside(own[::-1, bw // 2]))
        outer = (x, y, x + bw, y + bh)
    return mask * ~np.isin(labels, lines), frame, outer


def _inside(line: np.ndarray) -> int:
    """How many of the first pixels of ``line`` (a frame's pixels across its middle, bool) are its side:
    the frame's line where it starts there, 0 where its side lies beyond (cut off by the margin)."""
    half = line[: len(line) // 2]
    return int(np.flatnonzero(half).max()) + 1 if half.any() else 0
