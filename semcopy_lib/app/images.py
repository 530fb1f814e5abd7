"""Images for the faces (dashboard, HTTP API): decoding what a user sends, thumbnails as ``data:`` URIs,
region crops. The faces come through here rather than reaching into ``data``/``segment``."""

from __future__ import annotations

import base64
import io
from functools import lru_cache

from PIL import Image

from semcopy_lib.data import ImageLoadError, is_image_path, load_image
from semcopy_lib.segment import crop

__all__ = ["ImageLoadError", "crop", "data_uri", "file_thumb", "is_image_path", "load_image"]


def data_uri(img: Image.Image, side: int = 160) -> str:
    """A JPEG ``data:`` URI of ``img`` shrunk to fit ``side`` x ``side``."""
    thumb = img.copy()
    thumb.thumbnail((side, side), Image.LANCZOS)
    buf = io.BytesIO()
    thumb.convert("RGB").save(buf, "JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@lru_cache(maxsize=4096)
def file_thumb(path: str, side: int = 160, max_decoded: int = 16_000_000) -> str:
    """``data_uri`` of an image file, cached; an empty string when the file cannot be read or would
    decode to more than ``max_decoded`` pixels (a PNG decodes at about 10 ms a megapixel, and a
    100-Mpx one takes gigabytes). Decoded shrunk: a JPEG by its DCT, anything else by a whole factor."""
    try:
        return data_uri(load_image(path, max_side=2 * side, coarse=True, max_decoded=max_decoded), side)
    except ImageLoadError:
        return ""
