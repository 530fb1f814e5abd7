"""Parts of a page off its colour: cards, framed pictures and drawings found as connected pixels.

XY-cuts need a uniform strip all across a block to cut on, so they miss what the page's layout
does not line up: a card in a social feed whose caption runs on beside the picture, a picture with
a faint frame of its own, clip art whose parts touch but whose canvas is the page's colour (the
bands of a flag split on the seams between them). Here the pixels off the page's colour (its most
common colour) are closed by a few pixels and grouped into connected parts; a part is kept when it
is large enough, not a long strip, and holds a stroke that is not small (a paragraph of text is many
glyphs, each a small fraction of it).

Its figures on the regions benchmark: docs/benchmarks.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semcopy_lib.data.boxes import Box
from semcopy_lib.segment.layout import BLOCKS

@dataclass(frozen=True)
class PartsConfig:
    """Thresholds of :func:`parts_off_page`; saved with an index as the query config's ``layout.parts``.

    Attributes:
        off_page: pixels whose summed |dRGB| from the page's colour exceed this are off the page.
        close: off-page pixels this close (pixels at work scale) are one part: anti-aliased strokes,
            touching bands.
        stroke_span: a picture has a stroke (8-connected off-page pixels) at least this share of its
            longer side.
        max_share: a part larger than this share of the page is the page's own structure (a sidebar, a
            hero section).
    """

    off_page: float = 30.0
    close: int = 3
    stroke_span: float = 0.25
    max_share: float = 0.6


#: The defaults, for callers without a config of their own.
PARTS = PartsConfig()

def page_colour(small: np.ndarray) -> np.ndarray:
    """The most common colour of an (H, W, 3) image, in bins of 4 levels, as the mean of its pixels
    (one in seven)."""
    pixels = small.reshape(-1, 3)[::7]  # a sample: the page's colour is most of it
    q = pixels.astype(np.int32) // 4  # fine bins: a white card on a (240, 242, 245) page is another colour
    key = (q[:, 0] * 64 + q[:, 1]) * 64 + q[:, 2]
    return pixels[key == np.bincount(key).argmax()].mean(axis=0)


def off_colour(image: np.ndarray, colour: np.ndarray, level: float = PARTS.off_page) -> np.ndarray:
    """(H, W) uint8, 1 where a pixel of an (H, W, 3) uint8 image is off ``colour`` (3,): its summed
    |dR| + |dG| + |dB| over ``level``."""
    import cv2

    scalar = tuple(float(v) for v in np.round(colour)) + (0.0,)
    summed = cv2.transform(cv2.absdiff(np.ascontiguousarray(image), scalar), np.ones((1, 3), np.float32))
    return (summed > level).astype(np.uint8)


def parts_off_page(small: np.ndarray, min_side: int, max_aspect: float = BLOCKS.max_aspect,
                   config: PartsConfig = PARTS) -> list[Box]:
    """Boxes (x, y, w, h) of the parts off the page's colour of an (H, W, 3) uint8 image at work scale,
    each at least ``min_side`` pixels on its shorter side and at most ``max_aspect`` times longer (a
    longer part is a line of text, as a longer block is)."""
    import cv2

    off = off_colour(small, page_colour(small), config.off_page)
    closed = cv2.morphologyEx(off, cv2.MORPH_CLOSE, np.ones((config.close, config.close), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(closed)
    area = off.size
    out: list[Box] = []
    for i in range(1, n):
        x, y, w, h, _ = stats[i]
        if min(w, h) < min_side or w * h >= config.max_share * area or max(w, h) > max_aspect * min(w, h):
            continue
        part = off[y : y + h, x : x + w] & (labels[y : y + h, x : x + w] == i)
        m, _, strokes, _ = cv2.connectedComponentsWithStats(part.astype(np.uint8), connectivity=8)
        if m > 1 and strokes[1:, 2:4].max() >= config.stroke_span * max(w, h):
            out.append((int(x), int(y), int(w), int(h)))
    return out
