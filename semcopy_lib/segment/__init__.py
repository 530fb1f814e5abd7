"""Layout analysis of a query: is it a single photo, a screenshot or a collage, and where are the photos.

:func:`analyse` finds photo blocks with recursive XY-cuts (see :mod:`semcopy_lib.segment.layout`):
blocks that a regular grid explains, or several that cover most of the image, are a collage; fewer
or smaller ones a screenshot; an image with no block apart from (nearly) itself is a single photo,
and so is one with no block at all unless parts off its colour make it a page (below).
A screenshot is also searched for pictures framed by edges (:func:`rectangles_in`), the
screenshot's connected parts off the page's colour are boxes too (:func:`parts_off_page`: cards and
drawings that no strip all across a block separates), and a drawing trimmed to its bounding box is
grown to its picture's plain canvas (:func:`canvas_of`). A framed figure, card or infobox ends
above the caption or table stacked under its picture, and a box round a card's border is what the
border holds (:func:`without_caption`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from semcopy_lib.data.boxes import Box
from semcopy_lib.segment.caption import CaptionConfig, without_caption
from semcopy_lib.segment.canvas import CanvasConfig, canvas_of, touching_groups, union
from semcopy_lib.segment.layout import (BlocksConfig, find_blocks, grid_cells, inside_share, iou, min_photo_side,
                                        rectangles_in, work_scale)
from semcopy_lib.segment.parts import PartsConfig, parts_off_page
from semcopy_lib.segment.subjects import SubjectsConfig, subject_boxes


LAYOUTS = ("single", "screenshot", "collage")
#: The kinds of the regions a layout gives besides the whole image: a page's photos, a collage's tiles.
PART_KINDS = ("photo", "tile")


@dataclass(frozen=True)
class Region:
    """A part of the query to search: its box and what it is.

    Kinds: ``whole``; ``photo`` (in a screenshot), ``tile`` (of a collage); ``subject`` (a drawn
    subject on a single picture, :func:`subject_boxes`); ``object`` (a detector box); ``window``
    (a feature-map window of a single picture); ``residual`` (what a gallery picture that the whole
    query copies does not explain, :func:`~semcopy_lib.segment.residual.residual_parts`); ``match`` (where a gallery picture was found pixel for
    pixel, :func:`~semcopy_lib.segment.template.match_picture`: not searched, reported with its hit).
    """

    box: Box
    kind: str


@dataclass(frozen=True)
class LayoutConfig:
    """Thresholds of :func:`analyse` (saved with an index as the query config's ``layout``).

    Attributes:
        single_cover: a single block covering at least this share of the image makes it a single photo ...
        page_panel: ... unless it holds photos of its own and is further than this (IoU) from the whole
            image: a page whose hero section or panel fills most of it under a nav bar.
        collage_cover: two or more blocks covering at least this share of the image make it a collage.
        same_box: a block this close (IoU) to a grid cell is that cell.
        grid_frame, grid_cover: a regular grid explaining the blocks makes a collage when its cells
            cover ``grid_frame`` of the image and the blocks ``grid_cover`` of the cells (tiles of clip
            art on white show only their drawing).
        near_same: a box this close (IoU) to one already found is the same region: searched once.
        page_parts: an image that no strip all across cuts (a page whose header bar and sidebar reach
            its edges) is a screenshot when this many parts off its most common colour are of one size
            in one row or column (a page's cards; a symmetric drawing's mirrored halves are two, a photo's
            parts seldom line up); 0: a single picture ...
        page_align: ... sizes and rows within this share of the image's longer side.
        blocks: the XY-cut that finds the blocks (:class:`~semcopy_lib.segment.layout.BlocksConfig`).
        canvas: how a drawing's box grows to its plain canvas (:class:`~semcopy_lib.segment.canvas.CanvasConfig`).
        parts: the parts off a page's colour (:class:`~semcopy_lib.segment.parts.PartsConfig`).
        caption: where a caption under a picture starts (:class:`~semcopy_lib.segment.caption.CaptionConfig`).
    """

    single_cover: float = 0.8
    page_panel: float = 0.95
    collage_cover: float = 0.6
    same_box: float = 0.8
    grid_frame: float = 0.8
    grid_cover: float = 0.3
    near_same: float = 0.95
    page_parts: int = 3
    page_align: float = 0.005
    blocks: BlocksConfig = field(default_factory=BlocksConfig)
    canvas: CanvasConfig = field(default_factory=CanvasConfig)
    parts: PartsConfig = field(default_factory=PartsConfig)
    caption: CaptionConfig = field(default_factory=CaptionConfig)


@dataclass(frozen=True)
class Layout:
    """What a query image is and where its photos are."""

    layout: str
    boxes: list[Box] = field(default_factory=list)

    def regions(self, size: tuple[int, int]) -> list[Region]:
        """The regions to search: the whole image first, then each photo box that is not the whole."""
        whole = (0, 0, size[0], size[1])
        kind = "tile" if self.layout == "collage" else "photo"
        return [Region(whole, "whole")] + [Region(b, kind) for b in self.boxes if b != whole]


def analyse(image: Image.Image, config: LayoutConfig = LayoutConfig()) -> Layout:
    """Layout of an RGB image: ``single`` / ``screenshot`` / ``collage`` and its photo boxes (x, y, w, h)."""
    width, height = image.size
    whole = (0, 0, width, height)
    rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    small = work_scale(rgb, config.blocks)
    blocks = find_blocks(small, config.blocks)
    wh, ww = small.shape[:2]
    sx, sy = width / ww, height / wh

    def to_image(boxes: list[Box]) -> list[Box]:
        return [clip_box(scale_box(b, sx, sy), width, height) for b in boxes]

    def off_page(found: list[Box]) -> list[Box]:
        """The parts off the page's colour that are no box of ``found`` (cards, framed pictures,
        drawings that no strip all across a block separates; a page of cards is often a grid)."""
        side = min_photo_side(small, config.blocks)
        parts = to_image(parts_off_page(small, side, config.blocks.max_aspect, config.parts))
        return [b for b in parts if all(iou(b, o) < config.same_box for o in found)]

    # the layout is decided on the outermost blocks; photos inside a framed panel are searched too
    # on a screenshot (:func:`~semcopy_lib.segment.layout.xy_cut` returns both)
    inner = [b for b in blocks if any(o[2] * o[3] > b[2] * b[3] and inside_share(b, o) >= 0.95 for o in blocks)]
    blocks = [b for b in blocks if b not in inner]
    boxes = to_image(blocks)
    area = float(width * height)
    cover = sum(w * h for _, _, w, h in boxes) / area
    if not boxes:
        # no picture-like block: a page of text whose picture floats in it (no strip all across the
        # page separates them), or a single picture
        parts = off_page([])
        return _on_canvas(rgb, Layout("screenshot", parts), config) if parts else Layout("single", [whole])
    if len(boxes) == 1 and cover >= config.single_cover and not (inner and iou(boxes[0], whole) < config.page_panel):
        if config.page_parts and boxes[0] == whole:
            # no strip all across cut it: a page whose header bar and sidebar reach its edges holds its
            # cards in rows or columns on its own colour all the same
            parts = off_page([])
            if _in_rows(parts, config.page_align * max(width, height)) >= config.page_parts:
                return _on_canvas(rgb, Layout("screenshot", parts), config)
        return Layout("single", [whole])
    cells = to_image(grid_cells(blocks))
    frame = sum(w * h for _, _, w, h in cells) / area
    if cells and frame >= config.grid_frame and cover >= config.grid_cover * frame:
        # blocks that are not (nearly) a cell stay too: the drawing in a tile, the picture of a web card
        tiles = cells + [b for b in boxes if max(iou(b, c) for c in cells) < config.same_box]
        return _on_canvas(rgb, Layout("collage", tiles + off_page(tiles)), config)
    if len(boxes) >= 2 and cover >= config.collage_cover:
        return _on_canvas(rgb, Layout("collage", boxes + off_page(boxes)), config)
    # pictures drawn by their edges: on a hero section's gradient or a photo, which no uniform gutter
    # separates (searched over the whole page: the section itself may be cut at the picture's edges)
    found = boxes + to_image(inner)
    rectangles = rectangles_in(rgb, config.blocks.min_photo_side * min(width, height), config=config.blocks)
    found += [b for b in rectangles if all(iou(b, o) < config.same_box for o in found)]
    return _on_canvas(rgb, Layout("screenshot", found + off_page(found)), config)


def _in_rows(parts: list[Box], tolerance: float) -> int:
    """The most of ``parts`` (x, y, w, h) of one size (within ``tolerance`` pixels) in one row or column
    (their tops, or their lefts, within it): a part and those alike it."""
    def alike(a: Box, b: Box, along: int) -> bool:
        return (abs(a[2] - b[2]) <= tolerance and abs(a[3] - b[3]) <= tolerance
                and abs(a[along] - b[along]) <= tolerance)

    return max((sum(alike(a, b, along) for b in parts) for a in parts for along in (0, 1)), default=0)


def _on_canvas(rgb: np.ndarray, layout: Layout, config: LayoutConfig = LayoutConfig()) -> Layout:
    """``layout`` with each drawing trimmed to its bounding box grown to its picture's plain canvas
    (:func:`~semcopy_lib.segment.canvas.canvas_of`), on a screenshot each box ended above a caption
    stacked under its picture (:func:`~semcopy_lib.segment.caption.without_caption`: a card's picture may
    be two boxes, what its frame holds and the picture cut from it), a box within
    ``config.near_same`` of an earlier one dropped. Blocks that touch (a drawing cut on a seam between its
    bands) are tried together, in place of each."""
    masks: dict = {}
    height, width = rgb.shape[:2]
    # every box handed on lies inside the image (edge rectangles are rounded back from a smaller scale)
    layout = Layout(layout.layout, [clip_box(box, width, height) for box in layout.boxes])

    def grow(box: Box) -> Box | None:
        return next((g for t in config.canvas.tolerances if (g := canvas_of(rgb, box, masks, t, config.canvas))), None)

    grown = [grow(box) for box in layout.boxes]
    for group in touching_groups([b for b, g in zip(layout.boxes, grown) if g is None], config.canvas.touch_gap):
        canvas = grow(union(group))
        if canvas is not None:
            grown = [canvas if b in group else g for b, g in zip(layout.boxes, grown)]
    grown = [canvas or box for box, canvas in zip(layout.boxes, grown)]
    if layout.layout == "screenshot":
        grown = [picture for box in grown for picture in without_caption(rgb, box, config.caption)]
    boxes: list[Box] = []
    for box in grown:
        if all(iou(box, b) < config.near_same for b in boxes):
            boxes.append(box)
    return Layout(layout.layout, boxes)


def clip_box(box: Box, width: int, height: int) -> Box:
    """``box`` cut to a ``width`` x ``height`` image (at least one pixel inside it): the one place
    boxes are made to fit, for the segmenter and for every region proposer."""
    x, y, w, h = box
    x, y = min(max(0, x), width - 1), min(max(0, y), height - 1)
    return (x, y, max(1, min(w, width - x)), max(1, min(h, height - y)))


def scale_box(box: Box, sx: float, sy: float) -> Box:
    """``box`` measured on an image resized by (sx, sy), in the original image's pixels."""
    x, y, w, h = box
    return (round(x * sx), round(y * sy), round(w * sx), round(h * sy))


def crop(image: Image.Image, box: Box) -> Image.Image:
    """The pixels of ``box`` (x, y, w, h)."""
    x, y, w, h = box
    return image.crop((x, y, x + w, y + h))


__all__ = ["LAYOUTS", "PART_KINDS", "Box", "Layout", "LayoutConfig", "SubjectsConfig", "Region", "analyse", "clip_box", "crop", "iou", "scale_box", "subject_boxes"]
