"""A corpus of malformed, odd and hostile files: what semcopy must answer with one clean line each.

``write_corpus(folder)`` writes every case and returns what each one should give: ``None`` for a file
that must be searched/indexed like any image, or a fragment of the one-line reason it must be refused
with. The tests and ``semcopy bench robustness`` feed it to ``index build`` and ``search --json``.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

#: Sides of the decompression bomb: 30,000 x 30,000 pixels (900 M), a few kilobytes on disk.
BOMB_SIDE = 30_000


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(side: int = BOMB_SIDE, rows: int = 200) -> bytes:
    """A greyscale PNG whose header says ``side`` x ``side`` pixels and whose data holds the first
    ``rows`` rows of zeros: a few kilobytes on disk, ``side**2`` bytes for whoever decodes it."""
    body = zlib.compress(b"\x00" * ((side + 1) * rows), 9)  # filter byte + pixels, per row
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def _photo(seed: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    """A distinct textured RGB picture per seed."""
    rng = np.random.default_rng(seed)
    w, h = size
    small = rng.integers(0, 255, (h // 10 + 1, w // 10 + 1, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((w, h), Image.NEAREST)


def _encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def write_corpus(folder: Path) -> dict[str, str | None]:
    """Write the corpus into ``folder``; returns {file name: None (good) or a fragment of its error}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cases: dict[str, tuple[bytes, str | None]] = {}
    jpeg = _encoded(_photo(1), "JPEG", quality=90)
    png = _encoded(_photo(2), "PNG")
    cases["zero-bytes.jpg"] = (b"", "empty file")
    cases["truncated.jpg"] = (jpeg[: len(jpeg) // 2], "cannot decode")
    cases["truncated.png"] = (png[: len(png) // 2], "cannot decode")
    cases["random-bytes.jpg"] = (np.random.default_rng(3).bytes(4096), "not an image")
    cases["notes.txt.png"] = (b"shopping list\nmilk\neggs\n" * 20, "text")
    cases["page.html.jpg"] = (b"<!DOCTYPE html><html><body><img src='x.png'></body></html>", "HTML")
    cases["drawing.svg"] = (
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
        b'<circle cx="32" cy="32" r="20" fill="red"/></svg>', "SVG")
    cases["bomb.png"] = (png_bomb(), "pixels")
    cases["one-pixel.png"] = (_encoded(Image.new("RGB", (1, 1), (200, 30, 30)), "PNG"), None)
    cases["strip-3x10000.png"] = (_encoded(_photo(4, (3, 10_000)), "PNG"), None)
    cases["strip-10000x3.png"] = (_encoded(_photo(5, (10_000, 3)), "PNG"), None)
    cases["cmyk.jpg"] = (_encoded(_photo(6).convert("CMYK"), "JPEG"), None)
    rgba16 = np.zeros((90, 120), dtype=np.uint16)
    rgba16[:, :60] = 65535
    cases["grey16.png"] = (_encoded(Image.fromarray(rgba16), "PNG"), None)
    pal = _photo(7).convert("P", palette=Image.ADAPTIVE, colors=16)
    cases["palette-transparent.png"] = (_encoded(pal, "PNG", transparency=0), None)
    rgba = _photo(8).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
    cases["alpha.png"] = (_encoded(rgba, "PNG"), None)
    frames = [_photo(9 + i) for i in range(3)]
    cases["animated.gif"] = (_encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100), None)
    cases["animated.webp"] = (_encoded(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100), None)
    rotated = _photo(12, (160, 100))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: viewers turn it 90 degrees clockwise
    cases["exif-rotated.jpg"] = (_encoded(rotated, "JPEG", exif=exif.tobytes()), None)
    cases["grey.jpg"] = (_encoded(_photo(13).convert("L"), "JPEG"), None)
    cases["name with spaces ünïcödé 写真.png"] = (_encoded(_photo(14), "PNG"), None)
    cases["up ..%2e%2e%2f.. passwd.png"] = (_encoded(_photo(15), "PNG"), None)
    cases["good.jpg"] = (jpeg, None)
    for name, (data, _) in cases.items():
        (folder / name).write_bytes(data)
    return {name: expect for name, (_, expect) in cases.items()}
