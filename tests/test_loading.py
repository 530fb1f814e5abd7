import io

import numpy as np
import pytest
from PIL import Image

from semcopy_lib.data import ImageLoadError, load_image


def _png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    return buf.getvalue()


def test_rgba_alpha_is_composited_on_white():
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    img.putpixel((0, 0), (0, 0, 255, 255))
    out = load_image(_png(img))
    assert out.mode == "RGB"
    assert out.getpixel((1, 1)) == (255, 255, 255)
    assert out.getpixel((0, 0)) == (0, 0, 255)


def test_keep_alpha_returns_rgba_only_for_transparent_images():
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    img.putpixel((0, 0), (0, 0, 255, 255))
    out = load_image(_png(img), keep_alpha=True)
    assert out.mode == "RGBA" and out.getpixel((1, 1))[3] == 0 and out.getpixel((0, 0)) == (0, 0, 255, 255)
    palette = Image.new("P", (3, 3), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.putpixel((0, 0), 0)
    assert load_image(_png(palette, transparency=0), keep_alpha=True).getpixel((0, 0))[3] == 0
    assert load_image(_png(Image.new("RGB", (3, 3), (1, 2, 3))), keep_alpha=True).mode == "RGB"


def test_an_image_given_as_an_image_is_not_changed():
    """Neither an RGB nor an RGBA image handed in is returned itself or marked (no copy is made for a
    decoded file that is already upright RGB or RGBA)."""
    for mode, keep in (("RGB", False), ("RGBA", True)):
        img = Image.new(mode, (50, 20))
        out = load_image(img, keep_alpha=keep, max_side=10)
        assert out is not img and out.size == (10, 4) and img.size == (50, 20) and "original_size" not in img.info
        assert load_image(img, keep_alpha=keep) is not img and "original_size" not in img.info


def test_la_half_transparent_black_becomes_grey():
    img = Image.new("LA", (2, 2), (0, 128))
    r, g, b = load_image(_png(img)).getpixel((0, 0))
    assert r == g == b and 120 <= r <= 135


def test_palette_with_transparency():
    img = Image.new("P", (3, 3), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.putpixel((0, 0), 0)
    out = load_image(_png(img, transparency=0))
    assert out.getpixel((0, 0)) == (255, 255, 255)  # transparent index -> white
    assert out.getpixel((1, 1)) == (255, 0, 0)


def test_16bit_greyscale_is_scaled_not_clipped():
    arr = np.array([[0, 32768], [65535, 65535]], dtype=np.uint16)
    img = Image.fromarray(arr)
    assert img.mode.startswith("I;16")
    out = load_image(_png(img))
    assert out.getpixel((0, 0)) == (0, 0, 0)
    assert out.getpixel((1, 0))[0] in (127, 128)
    assert out.getpixel((0, 1)) == (255, 255, 255)


def test_cmyk_jpeg():
    buf = io.BytesIO()
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(buf, "JPEG", quality=95)  # red in CMYK
    r, g, b = load_image(buf.getvalue()).getpixel((4, 4))
    assert r > 200 and g < 60 and b < 60


def test_exif_rotation_is_applied():
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 10, 20))  # white on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif, quality=95)
    out = load_image(buf.getvalue())
    assert out.size == (20, 40)
    assert out.getpixel((10, 2))[0] > 200  # left column became the top row
    assert out.info["original_size"] == (20, 40)


@pytest.mark.parametrize("size, decoded", [((3000, 2000), (1500, 1000)), ((2000, 3000), (1000, 1500)),
                                           ((4200, 1000), (1050, 250)), ((1600, 1200), (1600, 1200))])
def test_a_big_jpeg_is_decoded_shrunk_in_the_dct(monkeypatch, size, decoded):
    from PIL import JpegImagePlugin

    seen = []
    draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, box, *args):
        out = draft(self, mode, box, *args)
        seen.append(self.size)
        return out

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    buf = io.BytesIO()
    Image.new("RGB", size, (40, 90, 200)).save(buf, "JPEG")
    out = load_image(buf.getvalue(), max_side=1024)
    # the largest DCT scale (1/2, 1/4, 1/8) that keeps the longer side at 1024 or more, then shrunk to 1024
    assert seen[0] == decoded and max(out.size) == 1024 and out.info["original_size"] == size


def test_grey_and_max_side():
    out = load_image(Image.new("L", (400, 100), 77), max_side=100)
    assert out.size == (100, 25) and out.mode == "RGB"
    assert out.info["original_size"] == (400, 100)


@pytest.mark.parametrize("size, shrunk", [((1100, 500), (1100, 500)), ((2047, 100), (2047, 100)),
                                           ((2048, 1000), (1024, 500)), ((12700, 300), (1059, 25))])
def test_coarse_shrink_is_a_whole_factor_to_under_twice_max_side(size, shrunk):
    """``coarse``: an image up to twice ``max_side`` is kept as decoded; a larger one is averaged over
    k x k pixels (k = longer side // max_side), here 2 and 12 (a side not divisible rounds up)."""
    out = load_image(_png(Image.new("RGB", size, (40, 90, 200))), max_side=1024, coarse=True)
    assert out.size == shrunk and out.info["original_size"] == size


def test_coarse_shrink_averages_colour_where_the_picture_is_opaque():
    """A transparent pixel's hidden colour does not bleed into its opaque neighbour's average (the 2 x 2
    average is taken premultiplied by alpha, as Pillow's own resampling of transparency does)."""
    img = Image.new("RGBA", (2048, 4), (0, 0, 0, 0))  # transparent black ...
    img.paste((255, 0, 0, 255), (0, 0, 1, 4))  # ... beside one opaque red column
    out = load_image(_png(img), max_side=1024, keep_alpha=True, coarse=True)
    assert out.size == (1024, 2) and out.getpixel((0, 0)) == (255, 0, 0, 128)


def test_pixel_limit_refuses_before_decoding():
    data = _png(Image.new("L", (3000, 3000)))
    with pytest.raises(ImageLoadError, match="over the 1000000 limit"):
        load_image(data, name="bomb.png", max_pixels=1_000_000)


def test_a_decoded_size_limit_counts_a_jpeg_as_its_dct_shrinks_it():
    png, jpeg = _png(Image.new("RGB", (2000, 1000))), io.BytesIO()
    Image.new("RGB", (2000, 1000)).save(jpeg, "JPEG")
    with pytest.raises(ImageLoadError, match="2000x1000 = 2000000 pixels, over the 100000 limit"):
        load_image(png, name="big.png", max_side=256, max_decoded=100_000)
    # decoded at 1/4 (500 x 250, the smallest scale that keeps 256 px), then shrunk
    assert load_image(jpeg.getvalue(), max_side=256, max_decoded=125_000).size == (256, 128)
    with pytest.raises(ImageLoadError, match="over the 100000 limit"):
        load_image(jpeg.getvalue(), max_side=256, max_decoded=100_000)


@pytest.mark.parametrize(
    "content, reason",
    [(b"", "empty file"), (b"hello, I am text\n", "a text file, not an image"), (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, "")],
)
def test_bad_files_give_one_line_naming_the_file(tmp_path, content, reason):
    path = tmp_path / "bad file é.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageLoadError) as err:
        load_image(path)
    msg = str(err.value)
    assert msg.startswith(str(path) + ": ") and "\n" not in msg
    assert reason in msg


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 30)).save(buf, "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageLoadError, match="cut.jpg: cannot decode"):
        load_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "nope.png")


def test_a_link_to_a_missing_file_is_listed_as_skipped_not_as_an_image(tmp_path):
    from semcopy_lib.data import scan_folder

    Image.new("RGB", (8, 8), "red").save(tmp_path / "red.png")
    (tmp_path / "gone.png").symlink_to(tmp_path / "nowhere" / "gone.png")
    (tmp_path / "same.png").symlink_to(tmp_path / "red.png")
    skipped = []
    assert [f.gallery_id for f in scan_folder(tmp_path, skipped=skipped)] == ["red.png", "same.png"]
    assert skipped == [(str(tmp_path / "gone.png"), "a link to a missing file")]
