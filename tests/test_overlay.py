"""What search understood, drawn on the query: boxes in the file's pixels, whatever size it was decoded at."""

import io

import numpy as np
from PIL import Image, ImageDraw

from semcopy_lib.app.images import file_crop, load_image
from semcopy_lib.app.overlay import COLOURS, draw_understanding
from semcopy_lib.app.results import QueryResult
from semcopy_lib.segment import Region

BOX = (1200, 400, 600, 400)  # x, y, w, h in the file's pixels


def _jpeg() -> bytes:
    picture = Image.new("RGB", (2400, 1600), "white")
    x, y, w, h = BOX
    ImageDraw.Draw(picture).rectangle((x, y, x + w - 1, y + h - 1), fill=(20, 40, 200))
    buf = io.BytesIO()
    picture.save(buf, "JPEG", quality=95)
    return buf.getvalue()


def test_a_query_decoded_shrunk_is_drawn_and_cropped_where_its_file_pixels_say():
    full = load_image(_jpeg())
    shrunk = load_image(_jpeg(), max_side=1024, coarse=True)
    assert shrunk.size == (1200, 800) and shrunk.info["original_size"] == (2400, 1600)
    result = QueryResult(query="q.jpg", layout="single", regions=[Region(BOX, "subject")])
    drawn, expected = draw_understanding(shrunk, result), draw_understanding(full, result)
    assert drawn.size == expected.size == (480, 320)
    assert np.abs(np.asarray(drawn, np.float32) - np.asarray(expected, np.float32)).mean() < 2.0
    # the outline lies on the box's top edge, at a fifth of the file's pixels
    top = np.asarray(drawn, np.float32)[80, 250:350]
    assert np.abs(top - COLOURS["subject"]).max(axis=1).mean() < 20
    part = file_crop(shrunk, BOX)
    assert part.size == (300, 200)
    assert np.abs(np.asarray(part, np.float32).mean(axis=(0, 1)) - (20, 40, 200)).max() < 8
