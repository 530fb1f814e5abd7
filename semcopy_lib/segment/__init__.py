"""Layout analysis of a query: is it a single photo, a screenshot or a collage, and where are the photos.

This first version treats every image as a single photo whose one box is the whole image; the regions
issue replaces :func:`analyse` with real screenshot and collage segmentation behind the same types.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

Box = tuple[int, int, int, int]  # x, y, w, h in pixels

LAYOUTS = ("single", "screenshot", "collage")


@dataclass(frozen=True)
class Region:
    """A part of the query to search: its box and what it is (``whole``, ``photo``, ``tile``...)."""

    box: Box
    kind: str


@dataclass(frozen=True)
class Layout:
    """What a query image is and where its photos are."""

    layout: str
    boxes: list[Box] = field(default_factory=list)

    def regions(self, size: tuple[int, int]) -> list[Region]:
        """The regions to search: the whole image first, then each photo box that is not the whole."""
        whole = (0, 0, size[0], size[1])
        return [Region(whole, "whole")] + [Region(b, "photo") for b in self.boxes if b != whole]


def analyse(image: Image.Image) -> Layout:
    """Layout of an RGB image. For now: ``single`` with the whole image as its one box."""
    width, height = image.size
    return Layout("single", [(0, 0, width, height)])


def scale_box(box: Box, sx: float, sy: float) -> Box:
    """``box`` measured on an image resized by (sx, sy), in the original image's pixels."""
    x, y, w, h = box
    return (round(x * sx), round(y * sy), round(w * sx), round(h * sy))


def crop(image: Image.Image, box: Box) -> Image.Image:
    """The pixels of ``box`` (x, y, w, h)."""
    x, y, w, h = box
    return image.crop((x, y, x + w, y + h))


__all__ = ["LAYOUTS", "Box", "Layout", "Region", "analyse", "crop", "scale_box"]
