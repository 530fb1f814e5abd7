"""Seeded query layouts with known boxes: collages, web-page-like screenshots, subjects on photos.

Each function returns ``(image, box)`` where ``box`` (x, y, w, h) is where the source picture sits.
The pages are drawn with PIL (nav bar, text, sidebar, a framed card, light or dark theme); rendering
real HTML in Chromium is more realistic and is left for the regions benchmark.
"""

from __future__ import annotations

import random
from typing import Sequence

from PIL import Image, ImageDraw

from semcopy_lib.data.boxes import Box

LIGHT = {"bg": (255, 255, 255), "text": (33, 37, 41), "nav": (13, 110, 253), "card": (245, 246, 248), "side": (233, 236, 239)}
DARK = {"bg": (24, 26, 27), "text": (220, 220, 220), "nav": (40, 44, 52), "card": (36, 39, 46), "side": (30, 32, 36)}
WORDS = "semantic copy gallery search photo subject drawing collage page result image similar find".split()


def _fit(img: Image.Image, w: int, h: int) -> Image.Image:
    return img.resize((max(1, w), max(1, h)), Image.BICUBIC)


def collage(target: Image.Image, others: Sequence[Image.Image], rng: random.Random,
            rows: int, cols: int, gutter: int = 0, tile: int | tuple[int, int] = 256,
            colour: tuple[int, int, int] | None = None) -> tuple[Image.Image, Box]:
    """A rows x cols collage with ``target`` at a random tile; gutter 0 means tiles touch.

    ``tile``: a tile's side, or its (width, height); ``colour``: the gutters' colour (default: white,
    black or light grey, drawn from ``rng``)."""
    tw, th = (tile, tile) if isinstance(tile, int) else tile
    width, height = cols * tw + (cols + 1) * gutter, rows * th + (rows + 1) * gutter
    bg = colour if colour is not None else rng.choice([(255, 255, 255), (0, 0, 0), (240, 240, 240)])
    canvas = Image.new("RGB", (width, height), bg)
    slot = rng.randrange(rows * cols)
    pool = list(others)
    rng.shuffle(pool)
    box = (0, 0, 0, 0)
    for i in range(rows * cols):
        r, c = divmod(i, cols)
        x, y = gutter + c * (tw + gutter), gutter + r * (th + gutter)
        img = target if i == slot else pool[i % len(pool)]
        canvas.paste(_fit(img, tw, th), (x, y))
        if i == slot:
            box = (x, y, tw, th)
    return canvas, box


def page(target: Image.Image, rng: random.Random, dark: bool | None = None,
         size: tuple[int, int] = (1280, 800)) -> tuple[Image.Image, Box]:
    """A web-page-like screenshot: nav bar, paragraphs, maybe a sidebar, the picture in a card."""
    theme = DARK if (rng.random() < 0.5 if dark is None else dark) else LIGHT
    width, height = size
    canvas = Image.new("RGB", size, theme["bg"])
    draw = ImageDraw.Draw(canvas)
    nav = rng.randint(48, 72)
    draw.rectangle((0, 0, width, nav), fill=theme["nav"])
    for i in range(5):
        draw.text((40 + i * 120, nav // 2 - 6), rng.choice(WORDS).title(), fill=(255, 255, 255))
    side = rng.random() < 0.5
    left = 260 if side else 40
    if side:
        draw.rectangle((0, nav, 220, height), fill=theme["side"])
        for i in range(12):
            draw.text((20, nav + 30 + i * 28), " ".join(rng.choice(WORDS) for _ in range(2)), fill=theme["text"])
    # the picture, in a framed card, left or right of a text column
    pw = rng.randint(280, 480)
    ph = int(pw * target.height / max(1, target.width))
    ph = min(ph, height - nav - 140)
    pw = int(ph * target.width / max(1, target.height))
    right = rng.random() < 0.5
    px = width - pw - 60 if right else left + 20
    py = nav + rng.randint(60, max(61, height - nav - ph - 40))
    draw.rectangle((px - 14, py - 14, px + pw + 14, py + ph + 40), fill=theme["card"], outline=theme["text"] if rng.random() < 0.5 else None)
    canvas.paste(_fit(target, pw, ph), (px, py))
    draw.text((px, py + ph + 12), "Figure: " + " ".join(rng.choice(WORDS) for _ in range(3)), fill=theme["text"])
    tx0 = left if right else px + pw + 50
    tx1 = px - 50 if right else width - 40
    for i in range((height - nav - 60) // 22):
        line = " ".join(rng.choice(WORDS) for _ in range(max(1, (tx1 - tx0) // 70)))
        draw.text((tx0, nav + 30 + i * 22), line, fill=theme["text"])
    return canvas, (px, py, pw, ph)


def on_background(subject: Image.Image, background: Image.Image, rng: random.Random,
                  scale: tuple[float, float] = (0.35, 0.6), turn: float = 0.0, shadow: int = 0,
                  opacity: float = 1.0, visible: bool = False) -> tuple[Image.Image, Box]:
    """``subject`` (RGBA keeps its transparency) pasted at a random place and scale on ``background``.

    ``turn``: degrees the subject is turned (counter-clockwise, its box grows to hold it); ``shadow``:
    offset in pixels of a soft drop shadow under it (0: none); ``opacity``: how much of it covers the
    background (1: all). Only the place and scale are drawn from ``rng``. ``visible``: the box returned
    is that of the subject's visible pixels, not of its canvas (a drawing saved on a larger transparent
    canvas shows only where it is drawn: what a region found around it covers).

    Returns:
        (the composite, RGB; the subject's box (x, y, w, h), its shadow left out).
    """
    from PIL import ImageFilter

    canvas = background.convert("RGB").copy()
    bw, bh = canvas.size
    s = rng.uniform(*scale) * min(bw, bh) / max(subject.size)
    sub = subject.resize((max(1, int(subject.width * s)), max(1, int(subject.height * s))), Image.BICUBIC)
    if turn:
        sub = sub.convert("RGBA").rotate(turn, Image.BICUBIC, expand=True)
        sub = sub.crop(sub.getbbox() or (0, 0, *sub.size))
    sub = sub.resize((min(sub.width, bw), min(sub.height, bh)), Image.BICUBIC) if sub.width > bw or sub.height > bh else sub
    x, y = rng.randint(0, bw - sub.width), rng.randint(0, bh - sub.height)
    alpha = sub.getchannel("A") if sub.mode == "RGBA" else Image.new("L", sub.size, 255)
    if shadow:
        dark = alpha.point(lambda a: a * 6 // 10).filter(ImageFilter.GaussianBlur(max(1, shadow // 2)))
        canvas.paste((0, 0, 0), (min(bw - 1, x + shadow), min(bh - 1, y + shadow)), dark)
    if opacity < 1.0:
        alpha = alpha.point(lambda a: round(a * opacity))
    canvas.paste(sub.convert("RGB"), (x, y), alpha if (sub.mode == "RGBA" or opacity < 1.0) else None)
    shown = alpha.getbbox() if visible else None
    if shown is None:
        return canvas, (x, y, sub.width, sub.height)
    return canvas, (x + shown[0], y + shown[1], shown[2] - shown[0], shown[3] - shown[1])


def random_picture(rng: random.Random, size: tuple[int, int] = (512, 384)) -> Image.Image:
    """A seeded picture that is in no gallery: a smooth colour field with shapes and grain.

    Used for collage neighbours and backgrounds in benchmarks, so that only the hidden image can match.
    """
    import numpy as np
    from PIL import ImageFilter

    nrng = np.random.default_rng(rng.randrange(2**32))
    w, h = size
    field = Image.fromarray(nrng.integers(0, 255, (4, 5, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
    draw = ImageDraw.Draw(field)
    for _ in range(rng.randint(3, 9)):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        x1, y1 = x0 + rng.randint(20, w // 2), y0 + rng.randint(20, h // 2)
        colour = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    field = field.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 3)))
    grain = nrng.normal(0, rng.uniform(2, 10), (h, w, 3))
    return Image.fromarray(np.clip(np.asarray(field, dtype=np.float32) + grain, 0, 255).astype(np.uint8))


def text_page(rng: random.Random, size: tuple[int, int] = (512, 384)) -> Image.Image:
    """A seeded picture of a printed page (a scan or photo of a document): lines of words in dark grey
    on shaded, grainy paper. A background that is neither a photo scene nor clip art."""
    import numpy as np
    from PIL import ImageFilter, ImageFont

    w, h = size
    paper = rng.randint(170, 250)
    canvas = Image.new("RGB", size, (paper,) * 3)
    draw = ImageDraw.Draw(canvas)
    y = rng.randint(0, 20)
    while y < h:
        font = ImageFont.load_default(size=rng.choice([11, 14, 18, 24]))
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
        ink = rng.randint(0, 80)
        draw.text((rng.randint(0, 30), y), line, fill=(ink,) * 3, font=font)
        y += int(font.size * rng.uniform(1.3, 2.2))
    nrng = np.random.default_rng(rng.randrange(2**32))
    shade = np.linspace(rng.uniform(-40, 0), rng.uniform(0, 20), w)[None, :, None]
    arr = np.asarray(canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.2))), np.float32) + shade
    return Image.fromarray(np.clip(arr + nrng.normal(0, rng.uniform(2, 8), arr.shape), 0, 255).astype(np.uint8))


def silhouette(shape: Image.Image, rng: random.Random, size: tuple[int, int] = (512, 384)) -> Image.Image:
    """A seeded flat drawing: ``shape``'s alpha (an RGBA clip art) filled with one dark colour on a light
    backdrop, as large as fits. A background that is itself a drawing."""
    w, h = size
    canvas = Image.new("RGB", size, tuple(rng.randint(200, 255) for _ in range(3)))
    alpha = shape.getchannel("A") if shape.mode == "RGBA" else Image.new("L", shape.size, 255)
    s = rng.uniform(0.7, 1.0) * min(w / shape.width, h / shape.height)
    alpha = alpha.resize((max(1, int(shape.width * s)), max(1, int(shape.height * s))), Image.BILINEAR)
    ink = Image.new("RGB", alpha.size, tuple(rng.randint(0, 90) for _ in range(3)))
    canvas.paste(ink, (rng.randint(0, w - alpha.width), rng.randint(0, h - alpha.height)), alpha)
    return canvas
