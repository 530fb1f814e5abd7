"""The one image decoder: every path into semcopy (indexing, search, training, dashboard) uses it.

EXIF orientation is applied, any mode becomes RGB (alpha composited on white), a pixel limit guards
against decompression bombs, and every failure is an :class:`ImageLoadError` whose message is one
line naming the file.
"""

from __future__ import annotations

import io
import math
import os
import re
import sys
import warnings
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Images with more pixels than this are refused before decoding ($SEMCOPY_MAX_PIXELS; default about
#: 13k x 13k, PIL's own hard limit is 179M).
MAX_PIXELS = int(os.environ.get("SEMCOPY_MAX_PIXELS", "178000000"))
#: Files larger than this are refused before reading.
MAX_FILE_BYTES = 200 * 1024 * 1024

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO, Image.Image, np.ndarray]

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".jfif"}
)


def pil_open():
    """PIL's own ``Image.open``. ultralytics replaces it process-wide with a wrapper that, on a file
    PIL cannot identify, tries to install pi-heif at run time; our errors must not depend on that."""
    opener = Image.open
    if getattr(opener, "__module__", "PIL.Image") != "PIL.Image":
        patches = sys.modules.get("ultralytics.utils.patches")
        opener = getattr(patches, "_image_open", opener)
    return opener


class ImageLoadError(ValueError):
    """An image could not be read; ``str(err)`` is one line that names the file."""

    def __init__(self, name: str, reason: str):
        self.name = name
        self.reason = " ".join(str(reason).split()) or "unreadable"
        super().__init__(f"{name}: {self.reason}")


def is_image_path(path: Union[str, os.PathLike]) -> bool:
    """True when the file name has an image suffix this loader accepts."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


#: PIL modes with an alpha channel.
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def to_rgb(img: Image.Image, backdrop: int = 255) -> Image.Image:
    """Any PIL mode -> RGB; transparent pixels are composited on grey level ``backdrop`` (white).

    16-bit and 32-bit greyscale ('I;16', 'I') are scaled to 8 bits by their full range, CMYK goes
    through PIL's conversion, palettes with transparency are expanded to RGBA first.
    """
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16"):
            arr = arr / 257.0
        elif mode == "I":
            arr = arr / 257.0 if arr.max(initial=0) > 255 else arr
        else:  # float images: stretch to [0, 255]
            lo, hi = float(arr.min(initial=0.0)), float(arr.max(initial=1.0))
            arr = (arr - lo) / (hi - lo or 1.0) * 255.0
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")
        mode = "L"
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ALPHA_MODES:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (backdrop, backdrop, backdrop, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _not_an_image(data: bytes) -> str:
    """Why bytes PIL could not identify are not an image: SVG, HTML, text, or an unknown format."""
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if b"<svg" in head and (head.startswith(b"<svg") or head.startswith(b"<?xml") or head.startswith(b"<!--")):
        return "an SVG drawing, which semcopy does not render: convert it to PNG first"
    if head.startswith((b"<!doctype html", b"<html")) or b"<body" in head:
        return "an HTML page, not an image"
    try:
        text = data[:4096].decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text and sum(c.isprintable() or c in "\t\r\n" for c in text) >= 0.95 * len(text):
        return "a text file, not an image"
    return "not an image file (format not recognised)"


def _pixels_over(label: str, width: int, height: int, limit: int) -> ImageLoadError:
    return ImageLoadError(label, f"image is {width}x{height} = {width * height} pixels, over the {limit} limit")


def _name_of(source: ImageSource, name: str | None) -> str:
    if name:
        return name
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return getattr(source, "name", None) or "<image>"


def load_image(
    source: ImageSource, name: str | None = None, max_pixels: int = MAX_PIXELS, max_side: int | None = None,
    keep_alpha: bool = False, coarse: bool = False, max_decoded: int | None = None,
) -> Image.Image:
    """Decode ``source`` to an upright RGB PIL image.

    Args:
        source: a path, raw bytes, a binary file object, a PIL image or an (H, W[, C]) uint8 array.
        name: how errors name the source (defaults to the path, or ``<image>``).
        max_pixels: images with more pixels are refused before their pixels are decoded.
        max_side: when given, larger images are shrunk (JPEGs already while decoding) so that
            neither side exceeds it; ``img.info["original_size"]`` keeps the upright (w, h).
        keep_alpha: return an image with transparency as RGBA instead of compositing it on white
            (to paste a clip-art subject on another picture).
        coarse: shrink by a whole factor only (JPEG's DCT scaling, else an average of k x k pixels),
            leaving the longer side between ``max_side`` and twice it: for pixels that are shrunk again
            anyway (an encoder's views), without a full resampling pass over the decoded image.
        max_decoded: images that would decode to more pixels than this (a JPEG after its DCT scaling
            to ``max_side``) are refused before decoding: for a read that may be skipped when slow.

    Returns:
        An RGB (with ``keep_alpha``, maybe RGBA) ``PIL.Image.Image`` with EXIF orientation applied
        (the first frame of an animation).

    Raises:
        ImageLoadError: one line, naming the file, for anything that is not a readable image.
    """
    label = _name_of(source, name)
    try:
        if isinstance(source, np.ndarray):
            img = Image.fromarray(source)
        elif isinstance(source, Image.Image):
            img = source
        else:
            if isinstance(source, (str, os.PathLike)):
                path = Path(source)
                if not path.is_file():
                    raise ImageLoadError(label, "no such file" if not path.exists() else "not a file")
                size = path.stat().st_size
                if size == 0:
                    raise ImageLoadError(label, "empty file")
                if size > MAX_FILE_BYTES:
                    raise ImageLoadError(label, f"file is {size} bytes, over the {MAX_FILE_BYTES} limit")
                data = path.read_bytes()
            elif isinstance(source, (bytes, bytearray, memoryview)):
                data = bytes(source)
            else:
                data = source.read()
            if not data:
                raise ImageLoadError(label, "empty file")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit below
                try:
                    img = pil_open()(io.BytesIO(data))
                except UnidentifiedImageError:
                    raise ImageLoadError(label, _not_an_image(data)) from None
                except Image.DecompressionBombError as exc:  # PIL's own hard limit, met before ours
                    pixels = re.search(r"\((\d+) pixels\)", str(exc))
                    size = f"{pixels.group(1)} pixels" if pixels else "too many pixels"
                    raise ImageLoadError(label, f"image is {size}, over the {max_pixels} limit") from None
        width, height = img.size
        if width < 1 or height < 1:
            raise ImageLoadError(label, f"image has no pixels ({width}x{height})")
        if width * height > max_pixels:
            raise _pixels_over(label, width, height, max_pixels)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL warns on odd EXIF/palettes; we handle the result
            if max_side and img.format == "JPEG" and max(width, height) > max_side:
                # decoded at 1/2, 1/4 or 1/8 in the DCT while both sides stay at least the shrunk size's
                # (a box of the image's own aspect: a square one would hold the short side back)
                f = max_side / max(width, height)
                img.draft("RGB", (max(1, math.ceil(width * f)), max(1, math.ceil(height * f))))
            if max_decoded is not None and img.width * img.height > max_decoded:
                # before the EXIF is read: a PNG's may follow its pixels, which reading it decodes
                raise _pixels_over(label, img.width, img.height, max_decoded)
            if getattr(img, "is_animated", False):
                img.seek(0)
            # EXIF orientations 5-8 are quarter turns: the upright image has its sides swapped.
            orientation = img.getexif().get(0x0112, 1)
            original = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
            img.load()
            if orientation in (2, 3, 4, 5, 6, 7, 8):  # (exif_transpose copies even an upright image)
                img = ImageOps.exif_transpose(img) or img
            transparent = img.mode in ALPHA_MODES or "transparency" in img.info
            if keep_alpha and transparent:
                rgb = img if img.mode == "RGBA" else img.convert("RGBA")
            else:
                rgb = to_rgb(img)
            rgb = rgb.copy() if rgb is source else rgb  # the caller's image stays as it was
            if max_side and coarse and max(rgb.size) >= 2 * max_side:
                rgb = rgb.reduce(max(rgb.size) // max_side)
            elif max_side and not coarse and max(rgb.size) > max_side:
                rgb.thumbnail((max_side, max_side), Image.LANCZOS)
            rgb.info["original_size"] = original
            return rgb
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(label, "not an image file (format not recognised)") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError, TypeError) as exc:
        raise ImageLoadError(label, f"cannot decode image ({type(exc).__name__}: {exc})") from None
