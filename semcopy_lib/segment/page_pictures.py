"""The pictures a gallery image holds: the photos of a screenshot, the tiles of a collage.

A gallery page holding a picture is a copy of it, but the page as a whole is not near the picture; the
index keeps a vector of each picture the page holds (:func:`page_pictures`), so that the picture finds
the page and the two group as copies. A drawing drawn on a small part of its transparent canvas (a
clip-art page with a small drawing on it) is kept trimmed to what shows as well (:func:`trimmed_box`),
for searches by a query's parts only: a part is cut tight around what shows, a whole query is a canvas.
With :attr:`PagePicturesConfig.small`, every picture is also kept shrunk (:func:`small_view`), for the
searches of small parts only: a drawing pasted small is blurred, and enlarged to the encoder's input it
looks like itself shrunk, not like itself at full size.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from semcopy_lib.data.boxes import Box
from semcopy_lib.data.loading import to_rgb
from semcopy_lib.segment import LayoutConfig, analyse


@dataclass(frozen=True)
class PagePicturesConfig:
    """Which boxes of a gallery image are kept as pictures of their own (saved in the index manifest).

    Attributes:
        max_share: a box covering more of the image than this is the image itself, re-framed.
        min_side: a box shorter than this many pixels (of the image as indexed) is an icon.
        most: at most this many boxes per image, the largest (a page of thumbnails costs no more).
        card_frames: a card's frame inside a box is looked for too (``layout.caption.frames``, which a
            query's layout uses); off: `bench dedup` found fewer pairs with it (docs/benchmarks.md).
        trim: a drawing with transparency whose visible pixels' box covers less than this share of its
            canvas is also kept trimmed to that box, seen by region searches only (0: never); a near-full
            box adds little beside the canvas's own views.
        small: every picture (trimmed to what shows) is also kept shrunk to this many pixels on its longer
            side, seen only by the searches of regions whose longer side is at most twice that in the
            query as decoded (0: never; a picture pasted that small is as blurred as the view).
    """

    max_share: float = 0.6
    min_side: int = 48
    most: int = 8
    card_frames: bool = False
    trim: float = 0.8
    small: int = 64


def small_view(image: Image.Image, config: PagePicturesConfig = PagePicturesConfig()) -> tuple[Box, Image.Image] | None:
    """(the box of ``image``'s pixels that show, or the whole image, and that box flattened on white and
    shrunk to ``config.small`` on its longer side, Lanczos; a smaller one is kept as it is), or None when
    ``config.small`` is 0."""
    if config.small <= 0:
        return None
    shown = image.getchannel("A").getbbox() if image.mode == "RGBA" else None
    x0, y0, x1, y1 = shown or (0, 0, image.width, image.height)
    view = to_rgb(image.crop((x0, y0, x1, y1)))
    f = config.small / max(view.size)
    if f < 1:
        view = view.resize((max(1, round(view.width * f)), max(1, round(view.height * f))), Image.LANCZOS)
    return (x0, y0, x1 - x0, y1 - y0), view


def page_pictures(image: Image.Image, config: PagePicturesConfig = PagePicturesConfig(),
                  layout: LayoutConfig = LayoutConfig()) -> list[Box]:
    """The picture boxes (x, y, w, h), largest first, of ``image`` when it is an opaque screenshot or
    collage (:func:`~semcopy_lib.segment.analyse`); none for a single picture or a drawing with
    transparency (its layout parts are the drawing itself). Flat boxes (a flag's stripes, a coloured
    panel) are no pictures: their colours spread (p95 - p5, summed over RGB) under ``layout.blocks.uniform_range``."""
    if "A" in image.getbands() or "transparency" in image.info:
        return []
    rgb = image.convert("RGB")
    if not config.card_frames:
        layout = replace(layout, caption=replace(layout.caption, frames=False))
    found = analyse(rgb, layout)
    if found.layout == "single":
        return []
    area = image.width * image.height

    def pictured(b: Box) -> bool:
        x, y, w, h = b
        pixels = np.asarray(rgb.crop((x, y, x + w, y + h)), dtype=np.float32).reshape(-1, 3)
        spread = np.percentile(pixels, 95, axis=0) - np.percentile(pixels, 5, axis=0)
        return float(spread.sum()) >= layout.blocks.uniform_range

    boxes = [b for b in found.boxes
             if b[2] * b[3] <= config.max_share * area and min(b[2], b[3]) >= config.min_side and pictured(b)]
    return sorted(boxes, key=lambda b: -b[2] * b[3])[: config.most]


def trimmed_box(image: Image.Image, config: PagePicturesConfig = PagePicturesConfig()) -> Box | None:
    """The box (x, y, w, h) of the pixels of ``image`` that show (alpha above 0) when it has
    transparency and that box covers less than ``config.trim`` of it, its sides at least
    ``config.min_side``; else None (an opaque image, a drawing that fills its canvas, a speck)."""
    if image.mode != "RGBA" or config.trim <= 0:
        return None
    shown = image.getchannel("A").getbbox()
    if shown is None:
        return None
    x0, y0, x1, y1 = shown
    w, h = x1 - x0, y1 - y0
    if w * h >= config.trim * image.width * image.height or min(w, h) < config.min_side:
        return None
    return (x0, y0, w, h)
