"""Images for the faces (dashboard, HTTP API): decoding what a user sends, thumbnails as ``data:`` URIs,
region crops. The faces come through here rather than reaching into ``data``/``segment``."""

from __future__ import annotations

import base64
import io
from functools import lru_cache

from PIL import Image

from semcopy_lib.data import ImageLoadError, is_image_path, load_image
from semcopy_lib.segment import Box, crop, scale_box

__all__ = ["ImageLoadError", "crop", "data_uri", "file_crop", "file_thumb", "is_image_path", "load_image"]


def file_crop(image: Image.Image, box: Box) -> Image.Image:
    """The pixels of ``box`` (x, y, w, h), given in the file's pixels, from ``image`` decoded at any size
    (``image.info["original_size"]`` is the file's, as :func:`load_image` with ``max_side`` keeps it)."""
    ow, oh = image.info.get("original_size", image.size)
    return crop(image, scale_box(box, image.width / ow, image.height / oh))


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
