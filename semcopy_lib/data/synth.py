"""Seeded semantic-copy synthesis: the same picture cropped, recompressed, recoloured, drawn...

Every function takes an RGB PIL image and a ``random.Random`` (or none) and returns a new RGB image,
so a benchmark built from them is the same on every run.
"""

from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image, ImageChops, ImageEnhance, ImageFilter, ImageOps


def crop_fraction(img: Image.Image, rng: random.Random, low: float = 0.7, high: float = 0.85) -> Image.Image:
    """A random crop keeping ``low``..``high`` of each side (placed uniformly at random)."""
    w, h = img.size
    fw, fh = rng.uniform(low, high), rng.uniform(low, high)
    cw, ch = max(1, round(w * fw)), max(1, round(h * fh))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return img.crop((x, y, x + cw, y + ch))


def jpeg(img: Image.Image, quality: int = 60) -> Image.Image:
    """Recompress as JPEG at ``quality``."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def pencil_sketch(img: Image.Image, radius: float = 8.0) -> Image.Image:
    """Grey pencil drawing: colour-dodge of the grey image with its blurred inverse."""
    grey = ImageOps.grayscale(img)
    blurred = np.asarray(ImageOps.invert(grey).filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32)
    dodge = np.asarray(grey, dtype=np.float32) * 255.0 / np.maximum(255.0 - blurred, 1.0)
    sketch = Image.fromarray(np.clip(dodge, 0, 255).astype(np.uint8), "L")
    return ImageOps.autocontrast(sketch, cutoff=1).convert("RGB")


def line_art(img: Image.Image) -> Image.Image:
    """Dark edges on white."""
    edges = ImageOps.grayscale(img).filter(ImageFilter.FIND_EDGES)
    return ImageOps.invert(ImageOps.autocontrast(edges, cutoff=2)).convert("RGB")


def cartoon(img: Image.Image, colors: int = 8) -> Image.Image:
    """Flat colours (median filter + quantisation) with dark edges."""
    flat = img.filter(ImageFilter.MedianFilter(5)).quantize(colors=colors).convert("RGB")
    edges = ImageOps.grayscale(img).filter(ImageFilter.FIND_EDGES).point(lambda v: 0 if v > 40 else 255)
    return ImageChops.multiply(flat, edges.convert("RGB"))


def colour_shift(img: Image.Image, rng: random.Random) -> Image.Image:
    """Random brightness, contrast and saturation changes (each 0.6..1.4)."""
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        img = enhancer(img).enhance(rng.uniform(0.6, 1.4))
    return img


def rotate_small(img: Image.Image, rng: random.Random, degrees: float = 10.0) -> Image.Image:
    """Rotate by up to +-``degrees`` with a white fill."""
    return img.rotate(rng.uniform(-degrees, degrees), resample=Image.BICUBIC, expand=True, fillcolor=(255, 255, 255))


def mirror(img: Image.Image) -> Image.Image:
    return ImageOps.mirror(img)


def crop_jpeg(img: Image.Image, rng: random.Random) -> Image.Image:
    """The foundation benchmark's query: a 70-85 % crop recompressed at JPEG quality 50-80."""
    return jpeg(crop_fraction(img, rng), quality=rng.randint(50, 80))
