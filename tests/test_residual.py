"""What a matched gallery picture does not explain: the residual of a composite, and its search."""

import io
import random
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from semcopy_lib.app import SearchService
from semcopy_lib.data import compose, load_image, to_rgb
from semcopy_lib.segment import iou
from semcopy_lib.segment.residual import ResidualConfig, residual_boxes, residual_parts
from semcopy_lib.segment.template import read_thumbnail, thumbnail

from conftest import pattern_image


def _photo() -> Image.Image:
    from semcopy_lib.data.samples import sample_photo_files

    return load_image(sample_photo_files()["astronaut"], max_side=512)


def _drawing() -> Image.Image:
    """A flat clip art with transparency: a red disc with a black ring."""
    from PIL import ImageDraw

    art = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    draw = ImageDraw.Draw(art)
    draw.ellipse((10, 10, 190, 190), fill=(220, 30, 30, 255), outline=(0, 0, 0, 255), width=12)
    return art


def test_a_drawing_pasted_on_a_photo_is_its_residual():
    photo = _photo()
    query, box = compose.on_background(_drawing(), photo, random.Random(1), scale=(0.3, 0.3))
    boxes = residual_boxes(query, read_thumbnail(thumbnail(photo)))
    assert len(boxes) >= 1 and iou(boxes[0], box) >= 0.7


def test_the_picture_read_larger_lifts_the_drawing_more_cleanly():
    """At the thumbnail's 96 pixels the drawing's edge and the photo's detail blur together; compared with
    the picture at 192 pixels (its file), the part lifted onto white keeps more drawing and less photo."""
    photo = _photo()
    detail = photo.copy()
    detail.thumbnail((192, 192), Image.LANCZOS)
    query, _ = compose.on_background(_drawing(), photo, random.Random(0), scale=(0.2, 0.2))
    on_white, _ = compose.on_background(_drawing(), Image.new("RGB", photo.size, "white"), random.Random(0),
                                        scale=(0.2, 0.2))

    def error(parts):  # mean distance (levels) of the lifted part on white from the drawing on white
        (x, y, w, h), lifted = parts[0]
        return np.abs(np.asarray(to_rgb(lifted), np.float32)
                      - np.asarray(on_white.crop((x, y, x + w, y + h)), np.float32)).mean()

    thumb = read_thumbnail(thumbnail(photo))
    assert error(residual_parts(query, thumb, detail=lambda: detail)) < 0.6 * error(residual_parts(query, thumb))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_drawing_too_small_for_the_thumbnail_is_found_in_the_picture_read_larger(seed):
    """A disc a tenth of the photo's side blurs into the 96-px thumbnail (no part there); what differs
    there is looked at again in the picture at 192 pixels, where the disc is a part of its own."""
    photo = _photo()
    detail = photo.copy()
    detail.thumbnail((192, 192), Image.LANCZOS)
    query, box = compose.on_background(_drawing(), photo, random.Random(seed), scale=(0.1, 0.1))
    thumb = read_thumbnail(thumbnail(photo))
    assert residual_boxes(query, thumb) == []
    assert residual_boxes(query, thumb, ResidualConfig(closer=False), detail=lambda: detail) == []
    boxes = residual_boxes(query, thumb, detail=lambda: detail)
    assert len(boxes) == 1 and iou(boxes[0], box) >= 0.7


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_drawing_pasted_large_on_a_dark_sparse_photo_is_found(seed):
    """A saturated disc over 40 % of the side of a dark photo of small galaxies: matched on three colour
    channels the disc's colour weighs against the photo's grey (correlation under ``min_alignment``, so
    nothing was returned); on grey levels the photo around it still aligns (about 0.63-0.67)."""
    from semcopy_lib.data.samples import sample_photo_files

    photo = load_image(sample_photo_files()["hubble_deep_field"], max_side=512)
    query, box = compose.on_background(_drawing(), photo, random.Random(seed), scale=(0.4, 0.4))
    [found] = residual_boxes(query, read_thumbnail(thumbnail(photo)))
    assert iou(found, box) >= 0.9


def _card() -> Image.Image:
    """An opaque light-grey card with a red arrow outlined on it: pasted large, it covers much of a photo."""
    from PIL import ImageDraw

    card = Image.new("RGB", (200, 200), (235, 235, 235))
    ImageDraw.Draw(card).polygon([(40, 20), (160, 20), (160, 150), (120, 150), (120, 60), (80, 60), (80, 120),
                                  (110, 120), (60, 185), (10, 120), (40, 120)], outline=(230, 40, 20), width=10)
    return card


@pytest.mark.parametrize("photo_name,seed", [("rocket", 0), ("hubble_deep_field", 1), ("hubble_deep_field", 2)])
def test_a_card_pasted_over_much_of_a_dark_photo_is_its_residual(photo_name, seed):
    """A light card half the short side of a dark photo: the whole query's grey levels correlate with the
    photo's under ``min_alignment`` (0.30, 0.16, 0.19), which alone refused the alignment; around the card's
    part they still align, so the card is the residual."""
    from semcopy_lib.data.samples import sample_photo_files
    from semcopy_lib.segment import residual

    photo = load_image(sample_photo_files()[photo_name], max_side=512)
    query, box = compose.on_background(_card(), photo, random.Random(seed), scale=(0.5, 0.5))
    thumb = read_thumbnail(thumbnail(photo))
    config = ResidualConfig()
    _, small = residual._shrunk(query, to_rgb(thumb), config)
    assert residual._align(small, to_rgb(thumb), config.shares, config.refine)[0] < config.min_alignment
    [found] = residual_boxes(query, thumb)
    assert iou(found, box) >= 0.7  # the card's box, grown by ``pad`` on each side


@pytest.mark.parametrize("photo_name,scale,seed", [("bus", 0.6, 1), ("motorcycle", 0.7, 0)])
def test_a_card_that_bends_the_colour_fit_is_found_by_the_better_half_of_the_pixels(photo_name, scale, seed):
    """A light card over 60-70 % of the short side of a darker photo: the whole query correlates under
    ``min_alignment`` (0.45, 0.46), and a gain and offset fitted on all pixels bend towards the card until
    nothing differs. Fitted on the better half of the pixels, the card differs, and the photo around it
    aligns."""
    from semcopy_lib.data.samples import sample_photo_files
    from semcopy_lib.segment import residual

    photo = load_image(sample_photo_files()[photo_name], max_side=512)
    query, box = compose.on_background(_card(), photo, random.Random(seed), scale=(scale, scale))
    thumb = read_thumbnail(thumbnail(photo))
    config = ResidualConfig()
    _, small = residual._shrunk(query, to_rgb(thumb), config)
    found = residual._align(small, to_rgb(thumb), config.shares, config.refine)
    assert found[0] < config.min_alignment
    assert residual._differing(small, found[1], config)[1] == []  # the fit on all pixels bent
    [part] = residual_boxes(query, thumb)
    assert iou(part, box) >= 0.7


def test_a_card_pasted_on_another_photo_is_not_aligned():
    """The pixels around a pasted card must align too: a card on the rocket photo, compared with each other
    package photo, is aligned with none (with any alignment that shows a part accepted, seven would be)."""
    from semcopy_lib.data.samples import sample_photo_files

    files = sample_photo_files()
    query, _ = compose.on_background(_card(), load_image(files["rocket"], max_side=512), random.Random(1), scale=(0.5, 0.5))
    for other in sorted(set(files) - {"rocket"}):
        assert residual_boxes(query, read_thumbnail(thumbnail(load_image(files[other], max_side=512)))) == [], other


def test_each_part_is_searched_on_white_and_on_the_encoders_grey():
    """A flag whose top stripe is white, pasted on a gallery photo: lifted onto white, that stripe is lost
    in the background; on the grey of the encoder's ``index_backdrops`` (the gallery embeds drawings with
    transparency on it too) the stripe still shows."""
    from types import SimpleNamespace

    from semcopy_lib.query import QueryConfig, QueryImage
    from semcopy_lib.query.proposers.residual import residual

    flag = Image.new("RGB", (180, 120), "white")
    flag.paste((20, 40, 160), (0, 40, 180, 80))
    flag.paste((200, 20, 30), (0, 80, 180, 120))
    photo = _photo()
    query, (fx, fy, fw, fh) = compose.on_background(flag, photo, random.Random(0), scale=(0.3, 0.3))
    asked = QueryImage(query, SimpleNamespace(config=SimpleNamespace(index_backdrops=(128,))), QueryConfig())
    asked.add_copied(read_thumbnail(thumbnail(photo)))
    [part] = residual(asked)
    x, y, w, h = part.box
    assert part.kind == "residual" and len(part.views) == 1
    assert x <= fx and y <= fy and x + w >= fx + fw and y + h >= fy + fh  # the flag, padded
    stripe = (fx + fw // 2 - x, fy + fh // 6 - y)  # the white stripe's centre in the part's pixels
    white, grey = np.asarray(part.pixels, np.int32), np.asarray(part.views[0], np.int32)
    assert part.pixels.size == part.views[0].size == (w, h)
    assert (white[0, 0] == 255).all() and (np.abs(grey[0, 0] - 128) <= 2).all()  # around the flag
    assert (white[stripe[::-1]] >= 245).all() and (grey[stripe[::-1]] >= 245).all()  # the stripe itself


def test_a_recompressed_recoloured_copy_has_no_residual():
    photo = _photo()
    buf = io.BytesIO()
    photo.point(lambda v: min(255, int(v * 0.9) + 12)).resize((400, 400)).save(buf, "JPEG", quality=60)
    assert residual_boxes(load_image(buf.getvalue()), read_thumbnail(thumbnail(photo))) == []


def _flat_art() -> Image.Image:
    """Clip art on white: a triangle, a rectangle and a disc, flat colours with black outlines."""
    from PIL import ImageDraw

    art = Image.new("RGB", (400, 300), "white")
    draw = ImageDraw.Draw(art)
    draw.polygon([(40, 250), (140, 40), (240, 250)], fill=(30, 90, 200), outline=(0, 0, 0), width=6)
    draw.rectangle((220, 80, 360, 200), fill=(230, 180, 20), outline=(0, 0, 0), width=6)
    draw.ellipse((270, 180, 380, 280), fill=(200, 40, 40), outline=(0, 0, 0), width=6)
    return art


@pytest.mark.parametrize("art, crop, degrees", [("flat", (20, 15, 390, 290), 3), ("photo", (30, 20, 480, 490), 4),
                                                 ("photo", (30, 20, 480, 490), 5), ("flat", (24, 12, 376, 288), 2),
                                                 ("flat", (40, 30, 320, 270), -7)])
def test_a_copy_turned_a_little_has_no_residual(art, crop, degrees):
    """With the picture read larger where the thumbnail shows parts, as the service reads its file. The
    turns are tried at the upright alignment's scale: tried at its share of their larger canvas, a copy
    turned 2 or -7 degrees fitted another turn better and differed along its edges."""
    art = _flat_art() if art == "flat" else _photo()
    query = art.crop(crop).rotate(degrees, Image.BICUBIC, expand=True, fillcolor=(255, 255, 255))
    thumb = read_thumbnail(thumbnail(art))
    larger = art.copy()
    larger.thumbnail((192, 192), Image.LANCZOS)
    assert residual_boxes(query, thumb, detail=lambda: larger) == []
    # aligned upright only, its edges differ all along (accepted however loosely: turned 5 degrees, the
    # photo's grey levels correlate under ``min_alignment`` upright)
    upright = replace(ResidualConfig(), turns=(), min_alignment=0.4)
    assert residual_boxes(query, thumb, upright, detail=lambda: larger) != []


def _lopsided_art() -> Image.Image:
    """A disc with a square on one side: mirrored, the disc aligns and the square moves."""
    from PIL import ImageDraw

    art = Image.new("RGB", (400, 300), "white")
    draw = ImageDraw.Draw(art)
    draw.ellipse((80, 30, 320, 270), fill=(30, 90, 200), outline=(0, 0, 0), width=6)
    draw.rectangle((100, 200, 170, 260), fill=(230, 180, 20), outline=(0, 0, 0), width=4)
    return art


def test_a_mirrored_copy_has_no_residual_and_what_is_pasted_on_it_is_found():
    from PIL import ImageDraw, ImageOps

    art = _lopsided_art()
    thumb = read_thumbnail(thumbnail(art))
    mirrored = ImageOps.mirror(art)
    assert residual_boxes(mirrored, thumb) == []
    assert len(residual_boxes(mirrored, thumb, replace(ResidualConfig(), mirror=False))) == 2  # the square, twice
    ImageDraw.Draw(mirrored).rectangle((300, 40, 370, 110), fill=(200, 30, 30))
    [box] = residual_boxes(mirrored, thumb)
    assert iou(box, (300, 40, 71, 71)) >= 0.5


@pytest.mark.parametrize("share", [0.65, 0.75, 0.76, 0.86])
def test_a_crop_is_aligned_at_its_share_between_the_shares_tried(share):
    """A crop covering ``share`` of the picture is found within half the finest step (0.0125) of it,
    whichever of ``shares`` is nearest: 0.75 and 0.86 lie beyond any one step from 0.7 or 0.8."""
    from semcopy_lib.segment.residual import _align, _shrunk

    art = _flat_art()
    picture = art.copy()
    picture.thumbnail((96, 96), Image.LANCZOS)
    w, h = round(art.width * share), round(art.height * share)
    _, small = _shrunk(art.crop((art.width - w, art.height - h, art.width, art.height)), picture, ResidualConfig())
    correlation, _, found, _ = _align(small, picture, ResidualConfig().shares, ResidualConfig().refine)
    assert abs(found - share) <= 0.0065 and correlation >= 0.98


@pytest.mark.parametrize("quality", [75, 90, 95])
def test_a_copy_with_jpeg_colour_at_half_resolution_has_no_residual(quality):
    """JPEG's 4:2:0 keeps colour at half resolution: saturated edges bleed, grey ones do not."""
    thumb = read_thumbnail(thumbnail(_flat_art())).convert("RGB")

    def copy(subsampling):
        buf = io.BytesIO()
        thumb.save(buf, "JPEG", quality=quality, subsampling=subsampling)
        return load_image(buf.getvalue())

    assert residual_boxes(copy(subsampling=2), thumb) == []
    # compared with its colour sharp, the bleeding edges differ as parts; colour kept whole (4:4:4) they do not
    assert residual_boxes(copy(subsampling=2), thumb, replace(ResidualConfig(), chroma=0.0)) != []
    assert residual_boxes(copy(subsampling=0), thumb, replace(ResidualConfig(), chroma=0.0)) == []


def test_a_patch_of_the_same_grey_in_another_colour_is_a_residual():
    from PIL import ImageDraw

    thumb = read_thumbnail(thumbnail(_flat_art())).convert("RGB")
    query = thumb.copy()
    ImageDraw.Draw(query).rectangle((24, 50, 35, 61), fill=(170, 60, 20))  # grey 88 on the triangle's 85
    [box] = residual_boxes(query, thumb)
    assert iou(box, (24, 50, 12, 12)) >= 0.5


def test_lines_and_a_frame_that_differ_are_no_residual_but_a_patch_is():
    """Compared at the thumbnail's own size (work pixels = query pixels). The line is compared with colour
    sharp (``chroma=0``): blurred as JPEG keeps it, a saturated line's colour spreads over three pixels."""
    from PIL import ImageDraw

    thumb = read_thumbnail(thumbnail(_photo()))

    def drawn(shape, config=ResidualConfig(), **style):
        query = thumb.copy()
        ImageDraw.Draw(query).rectangle(shape, **style)
        return residual_boxes(query, thumb, config)

    sharp = replace(ResidualConfig(), chroma=0.0)
    assert drawn((30, 30, 60, 60), sharp, outline=(255, 255, 0), width=1) == []  # a line one work pixel wide
    assert drawn((30, 30, 60, 60), replace(sharp, core=1), outline=(255, 255, 0), width=1) != []
    [box] = drawn((30, 30, 45, 45), fill=(255, 255, 0))  # 16 x 16 pasted
    assert iou(box, (30, 30, 16, 16)) >= 0.5
    # a frame around the whole query is no part pasted on it, though its pixels are few
    query = thumb.copy()
    ImageDraw.Draw(query).rectangle((0, 0, 95, 95), outline=(255, 255, 0), width=4)
    assert residual_boxes(query, thumb) == []
    assert residual_boxes(query, thumb, replace(ResidualConfig(), max_area=1.0)) == [(0, 0, 96, 96)]


def test_another_picture_is_not_aligned():
    assert residual_boxes(pattern_image(1, (300, 200)), read_thumbnail(thumbnail(_photo()))) == []


@pytest.fixture(scope="module")
def service(gallery_index):
    return SearchService(gallery_index)


def test_a_composite_of_two_gallery_pictures_finds_both(service, gallery_dir, monkeypatch):
    """A gallery picture pasted on another: the whole query copies the background, the residual the paste."""
    background, pasted = sorted(gallery_dir.rglob("img00.png"))[0], sorted(gallery_dir.rglob("img07.png"))[0]
    query, box = compose.on_background(load_image(pasted), load_image(background), random.Random(4), scale=(0.4, 0.4))
    ids = {p.relative_to(gallery_dir).as_posix() for p in (background, pasted)}
    [result] = service.search([query], k=5)
    residuals = [r.box for r in result.regions if r.kind == "residual"]
    assert residuals and max(iou(b, box) for b in residuals) >= 0.5
    assert {h.gallery_id for h in result.hits[:2]} == ids
    assert result.hits[0].score >= service.encoder.copy_score  # the background is a copy
    # without the residual, the pasted picture is not among the first two hits
    config = service.config
    monkeypatch.setattr(service, "config", replace(config, residual=replace(config.residual, top=0)))
    [plain] = service.search([query], k=5)
    assert [r.kind for r in plain.regions] == ["whole"]
    assert {h.gallery_id for h in plain.hits[:2]} != ids


def test_a_composite_s_pasted_picture_is_not_outranked_by_its_background_s_neighbours(service, gallery_dir,
                                                                                      monkeypatch):
    """The whole query copies the background: its other whole-image hits are the background's neighbours,
    not the pasted picture. Counted low (its region kind's map), the residual's hit still comes second.
    The earlier code ranked the background's neighbours (whole) between them."""
    background, pasted = sorted(gallery_dir.rglob("img00.png"))[0], sorted(gallery_dir.rglob("img07.png"))[0]
    query, _ = compose.on_background(load_image(pasted), load_image(background), random.Random(4), scale=(0.4, 0.4))
    config = service.config
    monkeypatch.setattr(service, "config", replace(config, merge=replace(config.merge, residual=(0.3, 0.0))))
    [result] = service.search([query], k=5)
    ids = [p.relative_to(gallery_dir).as_posix() for p in (background, pasted)]
    assert [h.gallery_id for h in result.hits[:2]] == ids
    # what the whole image found under copy level is gone: the residual's hits (found pixel for pixel,
    # ``match``) follow the copy
    assert result.hits[0].region_kind == "whole"
    assert {h.region_kind for h in result.hits[1:]} <= {"residual", "match"}


def test_a_copy_keeps_its_hits_at_copy_level_and_those_whose_pictures_hold_it():
    """The whole image's hits of a copy with a residual part: those under copy level go unless their
    picture holds the query in its pixels (the twin a copy was cut from may score under copy level)."""
    from semcopy_lib.app.results import SearchHit
    from semcopy_lib.query import VerifyConfig, explained
    from semcopy_lib.query.verify import held_in

    def hit(gallery_id, score):
        return SearchHit(gallery_id, score, "x", None, (0, 0, 10, 10), "whole")

    hits = [hit("a", 0.9), hit("b", 0.6), hit("c", 0.5)]
    assert [h.gallery_id for h in explained(hits, 0.635)] == ["a"]
    assert [h.gallery_id for h in explained(hits, 0.635, {"c"})] == ["a", "c"]
    photo = _photo()
    query = photo.crop((40, 30, 40 + round(0.8 * photo.width), 30 + round(0.8 * photo.height)))
    thumbs = {"other": read_thumbnail(thumbnail(pattern_image(1, (300, 200)))), "photo": read_thumbnail(thumbnail(photo))}
    seen = {}
    assert held_in(query, [hit("other", 0.9), hit("photo", 0.6)], thumbs, VerifyConfig(), seen) == {"photo"}
    assert set(seen) == {"other", "photo"} and seen["photo"] > VerifyConfig().start > seen["other"]
    seen = {"other": 0.99}  # a correlation computed before is used as it is
    assert held_in(query, [hit("other", 0.9), hit("photo", 0.6)], thumbs, VerifyConfig(), seen) == {"other", "photo"}


def test_a_composite_shown_in_a_screenshot_finds_both_sources(service, gallery_dir, monkeypatch):
    """The page's photo copies a gallery photo with a picture pasted on it: the residual is looked for
    inside that photo, and its box is reported in the page's pixels."""
    background, pasted = sorted(gallery_dir.rglob("img00.png"))[0], sorted(gallery_dir.rglob("img07.png"))[0]
    rng = random.Random(4)
    composite, box = compose.on_background(load_image(pasted), load_image(background), rng, scale=(0.4, 0.4))
    page, (px, py, pw, ph) = compose.page(composite.resize((composite.width * 2, composite.height * 2)), rng,
                                          size=(1024, 768))
    f = pw / composite.width
    in_page = (px + round(box[0] * f), py + round(box[1] * f), round(box[2] * f), round(box[3] * f))
    ids = {p.relative_to(gallery_dir).as_posix() for p in (background, pasted)}
    [result] = service.search([page], k=5)
    assert result.layout == "screenshot"
    residuals = [r.box for r in result.regions if r.kind == "residual"]
    assert residuals and max(iou(b, in_page) for b in residuals) >= 0.5, (residuals, in_page)
    assert {h.gallery_id for h in result.hits[:2]} == ids
    # without the residual, the page's photo is its background and the pasted picture is not among the first two
    config = service.config
    monkeypatch.setattr(service, "config", replace(config, residual=replace(config.residual, top=0)))
    [plain] = service.search([page], k=5)
    assert "residual" not in [r.kind for r in plain.regions]
    assert {h.gallery_id for h in plain.hits[:2]} != ids


def test_the_service_reads_a_copied_picture_larger_from_its_file_only_when_asked(service, gallery_dir, monkeypatch):
    path = sorted(gallery_dir.rglob("img00.png"))[0]
    gallery_id = path.relative_to(gallery_dir).as_posix()
    with Image.open(path) as original:
        side = min(service.config.residual.detail_side, max(original.size))
    assert max(service._detail(service.index.gallery_file(gallery_id)).size) == side
    assert service.index.gallery_file("no/such.png") is None
    # a file that would decode to more pixels than the limit is not read (a large PNG decodes slowly)
    monkeypatch.setattr(service, "config", replace(service.config, residual=replace(
        service.config.residual, detail_max_pixels=original.width * original.height - 1)))
    assert service._detail(service.index.gallery_file(gallery_id)) is None
    monkeypatch.undo()
    # a copy that its picture explains everywhere reads no file
    read = []
    monkeypatch.setattr(service, "_detail", lambda p: read.append(p))
    [result] = service.search([load_image(path)], k=1)
    assert result.hits[0].gallery_id == gallery_id and read == []
    # one that its picture does not explain everywhere reads that picture's file
    pasted = sorted(gallery_dir.rglob("img07.png"))[0]
    query, _ = compose.on_background(load_image(pasted), load_image(path), random.Random(4), scale=(0.4, 0.4))
    service.search([query], k=2)
    assert read == [path.resolve()]


def test_the_rest_beside_a_pasted_picture_is_its_largest_strip():
    """Proposer ``rest``: of the strips left of, right of, above and below the box where a gallery picture
    was found, the largest, when it covers ``min_share`` of the query; nothing before a match."""
    from semcopy_lib.query import QueryConfig, QueryImage
    from semcopy_lib.query.proposers.rest import rest

    query = QueryImage(Image.new("RGB", (400, 300)), None, QueryConfig())
    assert rest(query) == []
    query.matched = (100, 50, 200, 200)  # strips: left 100 x 300, right 100 x 300, above 400 x 50, below 400 x 50
    [strip] = rest(query)
    assert (strip.box, strip.kind) == ((0, 0, 100, 300), "rest")
    query.matched = (0, 0, 250, 300)  # only the right strip is left: 150 x 300, a share of 0.375
    assert [p.box for p in rest(query)] == [(250, 0, 150, 300)]
    query.config = replace(QueryConfig(), rest=replace(QueryConfig().rest, min_share=0.4))
    assert rest(query) == []


def test_a_picture_that_holds_the_rest_joins_the_hits_by_its_pixels():
    """``with_rest``: the photo a crop was cut from closes its gap to 1 and goes in by score, replacing its
    weaker hit; a picture that does not hold the crop is left out; unchecked without a thumbnail."""
    from semcopy_lib.app.results import SearchHit
    from semcopy_lib.query import QueryConfig
    from semcopy_lib.query.verify import with_rest
    from semcopy_lib.segment.template import match_crop

    photo = _photo()
    other = pattern_image(7, size=photo.size)
    part = photo.crop((0, 0, photo.width // 2, photo.height))
    thumbs = {"photo": read_thumbnail(thumbnail(photo)), "other": read_thumbnail(thumbnail(other))}
    config = QueryConfig()
    box = (0, 0, photo.width // 2, photo.height)
    ranked = [SearchHit("drawing", 0.8, "", "", (200, 100, 50, 50), "match"),
              SearchHit("look-alike", 0.6, "", "", (200, 100, 50, 50), "subject"),
              SearchHit("photo", 0.45, "", "", (0, 0, 90, 90), "window")]
    found = [(part, [SearchHit("photo", 0.55, "", "", box, "rest"), SearchHit("other", 0.5, "", "", box, "rest"),
                     SearchHit("unseen", 0.5, "", "", box, "rest")])]
    c = match_crop(part, thumbs["photo"], config.verify.template)
    assert c >= config.rest.correlation > match_crop(part, thumbs["other"], config.verify.template)
    out = with_rest(ranked, found, thumbs, config.rest, config.verify)
    closed = (c - config.verify.start) / (1 - config.verify.start)
    assert [(h.gallery_id, h.region_kind) for h in out] == [("photo", "rest"), ("drawing", "match"), ("look-alike", "subject")]
    assert out[0].score == pytest.approx(0.55 + 0.45 * closed) and out[0].query_box == box
