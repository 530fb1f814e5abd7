"""The semantic copies a training image is shown as (DATA.md: what users bring), seeded."""

from __future__ import annotations

import random
from typing import Sequence

from PIL import Image

from semcopy_lib.data import synth
from semcopy_lib.data.loading import to_rgb

#: View kinds, in the order :func:`semantic_copies` returns them; ``original`` first.
VIEW_KINDS = ("original", "crop_jpeg", "line_art", "pencil", "cartoon", "colour", "on_photo", "turned")


def on_photo(subject: Image.Image, photo: Image.Image, rng: random.Random) -> Image.Image:
    """``subject`` pasted (with its transparency, if any) on a patch of ``photo`` a little larger than it:
    what a subject box cropped from a picture looks like."""
    margin = rng.uniform(1.0, 1.3)
    w, h = max(1, round(subject.width * margin)), max(1, round(subject.height * margin))
    scale = max(w / photo.width, h / photo.height, 1.0)
    if scale > 1.0:
        photo = photo.resize((max(w, round(photo.width * scale)), max(h, round(photo.height * scale))), Image.BICUBIC)
    x, y = rng.randint(0, photo.width - w), rng.randint(0, photo.height - h)
    canvas = photo.convert("RGB").crop((x, y, x + w, y + h))
    px, py = rng.randint(0, w - subject.width), rng.randint(0, h - subject.height)
    canvas.paste(subject, (px, py), subject if subject.mode == "RGBA" else None)
    return canvas


def one_view(image: Image.Image, kind: str, rng: random.Random, photos: Sequence[Image.Image]) -> Image.Image:
    """The ``kind`` view (one of :data:`VIEW_KINDS`) of ``image``, RGB."""
    rgb = to_rgb(image)
    if kind == "original":
        return rgb
    if kind == "crop_jpeg":
        return synth.crop_jpeg(rgb, rng)
    if kind == "line_art":
        return synth.line_art(rgb)
    if kind == "pencil":
        return synth.pencil_sketch(rgb)
    if kind == "cartoon":
        return synth.cartoon(rgb)
    if kind == "colour":
        return synth.colour_shift(synth.mirror(rgb) if rng.random() < 0.5 else rgb, rng)
    if kind == "on_photo":
        return on_photo(image, rng.choice(photos), rng) if photos else synth.crop_jpeg(rgb, rng)
    if kind == "turned":
        return synth.rotate_small(synth.crop_fraction(rgb, rng, 0.8, 0.95), rng)
    raise ValueError(f"unknown view kind {kind!r}; known: {', '.join(VIEW_KINDS)}")


def semantic_copies(image: Image.Image, rng: random.Random, photos: Sequence[Image.Image]) -> list[Image.Image]:
    """The image and its copies, one per :data:`VIEW_KINDS`, all RGB.

    ``image`` may be RGBA (a clip art's transparency is used for ``on_photo``); ``photos`` are the
    backgrounds to paste on.
    """
    return [one_view(image, kind, rng, photos) for kind in VIEW_KINDS]
