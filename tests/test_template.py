"""Pixel verification of pasted copies: thumbnails kept in the index, masked template matching, re-scoring."""

import io
import random
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from semcopy_lib.app import SearchService, build_index
from semcopy_lib.app.results import SearchHit
from semcopy_lib.query import VerifyConfig
from semcopy_lib.query.verify import verified
from semcopy_lib.data import compose, load_image
from semcopy_lib.segment import iou
from semcopy_lib.segment.template import THUMB_SIDE, match_crop, match_picture, read_thumbnail, read_thumbnails, thumbnail

VERIFY_FROM, VERIFY_WEIGHT = VerifyConfig().start, VerifyConfig().weight


def drawing() -> Image.Image:
    """An asymmetric clip art with transparency: a red boot, its toe to the right, with a yellow buckle."""
    img = Image.new("RGBA", (200, 160), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.polygon([(30, 10), (90, 10), (95, 100), (190, 110), (190, 150), (30, 150)], fill=(200, 30, 40, 255),
                 outline=(20, 20, 20, 255), width=4)
    draw.rectangle((40, 60, 85, 85), fill=(250, 210, 40, 255), outline=(20, 20, 20, 255), width=3)
    draw.ellipse((120, 115, 150, 140), fill=(120, 10, 20, 255))
    return img


def shown(box, picture: Image.Image):
    """The box (x, y, w, h) of ``picture``'s opaque pixels when ``picture`` (RGBA) is pasted at ``box``:
    what a region proposed around it bounds, and where a match reports it."""
    x, y, w, h = box
    left, top, right, bottom = picture.getchannel("A").getbbox()
    fx, fy = w / picture.width, h / picture.height
    return x + round(left * fx), y + round(top * fy), round((right - left) * fx), round((bottom - top) * fy)


@pytest.fixture(scope="module")
def pasted():
    """The boot pasted on a generated photo at a known box, and its mirror image (a near twin)."""
    rng = random.Random(0)
    boot = drawing()
    query, box = compose.on_background(boot, compose.random_picture(rng, (512, 384)), rng, scale=(0.45, 0.45))
    return query, box, boot, ImageOps.mirror(boot)


def test_thumbnail_keeps_transparency_and_fits_its_side(pasted):
    _, _, boot, _ = pasted
    thumb = read_thumbnail(thumbnail(boot))
    assert thumb.mode == "RGBA" and max(thumb.size) == THUMB_SIDE and thumb.size == (96, 77)
    assert thumb.getpixel((0, 0))[3] == 0 and thumb.getpixel((30, 50))[3] == 255


def test_the_pasted_picture_is_found_and_its_mirror_is_not(pasted):
    query, box, boot, mirror = pasted
    x, y, w, h = shown(box, boot)
    loose = (x - w // 10, y + h // 12, int(w * 1.15), int(h * 1.1))  # a region found roughly around it
    correlation, where = match_picture(query, loose, read_thumbnail(thumbnail(boot)))
    assert correlation > 0.9 and iou(where, shown(box, boot)) > 0.8
    twin, _ = match_picture(query, loose, read_thumbnail(thumbnail(mirror)))
    assert twin < correlation - 0.15  # the mirror's red body overlaps the boot's in places, not its outline


def test_a_picture_between_the_sizes_tried_is_found_by_halving_steps(pasted):
    """The boot fills 0.87 of the region around it, between the sizes 0.8 and 0.9 tried first: crisp
    clip art at the work size correlates far less a twentieth off its size, so the best size is moved
    by halving steps (0.05, then 0.025)."""
    from semcopy_lib.segment.template import TemplateConfig

    query, box, boot, _ = pasted
    x, y, w, h = shown(box, boot)
    region = (x - w // 10, y + h // 12, int(w * 1.15), int(h * 1.1))
    thumb = read_thumbnail(thumbnail(boot))
    assert match_picture(query, region, thumb)[0] > 0.95
    assert match_picture(query, region, thumb, TemplateConfig(halvings=0))[0] < 0.85
    # the verify config takes the finer sizes only from a correlation of 0.5: the boot's sizes reach it
    assert match_picture(query, region, thumb, TemplateConfig(refine_from=0.5))[0] > 0.95


@pytest.mark.parametrize("angle", [-25, -14, 17, 23])
def test_a_picture_pasted_at_a_slant_is_found_turned_and_its_mirror_is_not(angle):
    """The boot pasted turned: upright it is not found (under the bar 0.7); with ``turns`` it is, at its
    box, while its mirror image, turned too, stays well under."""
    boot = drawing()
    rng = random.Random(1)
    query, box = compose.on_background(boot, compose.random_picture(rng, (512, 384)), rng, scale=(0.45, 0.45),
                                       turn=angle, visible=True)
    upright = VerifyConfig().template
    turning = replace(upright, turns=VerifyConfig().turns)
    thumb, mirror = read_thumbnail(thumbnail(boot)), read_thumbnail(thumbnail(ImageOps.mirror(boot)))
    assert match_picture(query, box, thumb, upright, 0.7)[0] < 0.5
    correlation, where = match_picture(query, box, thumb, turning, 0.7)
    assert correlation > 0.85 and iou(where, box) > 0.7
    assert match_picture(query, box, mirror, turning, 0.7)[0] < correlation - 0.2


def test_a_picture_found_upright_is_not_looked_for_turned(pasted, monkeypatch):
    """Turns are tried only under the caller's bar: a picture found upright costs no turned comparison."""
    import semcopy_lib.segment.template as template

    query, box, boot, _ = pasted
    calls = []
    real = template._turned_match
    monkeypatch.setattr(template, "_turned_match", lambda *a: calls.append(1) or real(*a))
    turning = replace(VerifyConfig().template, turns=VerifyConfig().turns)
    thumb = read_thumbnail(thumbnail(boot))
    correlation, _ = match_picture(query, shown(box, boot), thumb, turning, 0.7)
    assert correlation > 0.9 and calls == []
    match_picture(query, shown(box, boot), thumb, turning, 0.99)
    assert calls == [1]  # under a bar it does not reach, it is tried turned


def test_halving_steps_are_taken_only_from_refine_from():
    """A score peaking at 0.87 on a grid 0.1 apart: the grid's best (0.9, value 0.97) is moved by the steps
    0.05 (to 0.85) and 0.025 (to 0.875) when it reaches ``refine_from``; under it, the grid's best is the
    answer and no step is scored."""
    from semcopy_lib.segment.template import halving_search

    asked = []

    def score(x: float) -> tuple[float, float]:
        asked.append(x)
        return 1.0 - abs(x - 0.87), x

    assert halving_search(score, (0.7, 0.8, 0.9, 1.0), (0.05, 0.025)) == pytest.approx((0.995, 0.875, 0.875))
    assert asked == pytest.approx([0.7, 0.8, 0.9, 1.0, 0.85, 0.95, 0.825, 0.875])
    asked.clear()
    assert halving_search(score, (0.7, 0.8, 0.9, 1.0), (0.05, 0.025), refine_from=0.98) == pytest.approx((0.97, 0.9, 0.9))
    assert asked == [0.7, 0.8, 0.9, 1.0]


def test_an_opaque_picture_is_found_and_a_flat_one_matches_nothing(pasted):
    """A picture without transparency (correlated without a mask) is found where it was pasted, its
    mirror less; a flat one (a white thumbnail) is no match anywhere, not a perfect one."""
    from semcopy_lib.data.loading import to_rgb

    query, box, boot, mirror = pasted
    correlation, where = match_picture(query, box, to_rgb(boot))
    assert correlation > match_picture(query, box, to_rgb(mirror))[0] and iou(where, box) > 0.7
    assert match_picture(query, box, Image.new("RGB", (96, 77), "white")) == (-1.0, None)


def silhouette(mirrored: bool = False) -> Image.Image:
    """A flat blue hand-like shape with transparency (one colour: a masked correlation has nothing to
    compare), its thumb to the right; ``mirrored``: its thumb to the left."""
    img = Image.new("RGBA", (160, 200), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.rectangle((30, 80, 110, 190), fill=(30, 60, 200, 255))  # palm
    for x in (30, 52, 74, 96):
        draw.rectangle((x, 10 + (x % 3) * 8, x + 14, 90), fill=(30, 60, 200, 255))  # fingers
    draw.polygon([(110, 120), (155, 70), (155, 95), (110, 160)], fill=(30, 60, 200, 255))  # thumb
    return ImageOps.mirror(img) if mirrored else img


def test_a_flat_silhouette_is_found_by_its_shape_and_its_mirror_scores_less():
    """A drawing of one flat colour (a stick figure, a hand print) has nothing to correlate inside its
    mask; its outline on the photo is what shows: found where it was pasted, its mirror image less."""
    rng = random.Random(3)
    hand = silhouette()
    query, box = compose.on_background(hand, compose.random_picture(rng, (512, 384)), rng, scale=(0.5, 0.5))
    x, y, w, h = shown(box, hand)
    loose = (x - w // 10, y + h // 12, int(w * 1.15), int(h * 1.1))
    correlation, where = match_picture(query, loose, read_thumbnail(thumbnail(hand)))
    assert correlation > 0.9 and iou(where, shown(box, hand)) > 0.8
    mirrored, _ = match_picture(query, loose, read_thumbnail(thumbnail(silhouette(mirrored=True))))
    assert mirrored < correlation - 0.1  # the palms and fingers overlap, the thumb does not


def test_a_drawing_on_a_wide_transparent_canvas_is_found_in_a_box_around_what_shows(pasted):
    """Clip art often sits on a canvas wider than the drawing (a quarter of the gallery's drawings fill
    under three quarters of theirs); a region proposed around what shows bounds the drawing, so the
    sizes tried are the drawing's, not its canvas's."""
    query, box, boot, _ = pasted
    canvas = Image.new("RGBA", (320, 256), (0, 0, 0, 0))
    canvas.paste(boot, (60, 48), boot)  # the boot's drawing fills half its canvas's side
    correlation, where = match_picture(query, shown(box, boot), read_thumbnail(thumbnail(canvas)))
    assert correlation > 0.9 and iou(where, shown(box, boot)) > 0.8


def test_a_flat_window_is_no_match_whatever_opencv_says(pasted, monkeypatch):
    """OpenCV's masked correlation gives a window without any spread an arbitrary value (a thumbnail's
    blank margin in an edge map); the flat windows of the query count as no match at all."""
    import cv2

    boot = read_thumbnail(thumbnail(pasted[2]))
    query = Image.new("RGB", (300, 200), (250, 250, 250))
    noise = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    query.paste(Image.fromarray(noise), (0, 0))  # the only part with any spread
    real = cv2.matchTemplate
    monkeypatch.setattr(cv2, "matchTemplate", lambda region, template, method, mask=None: np.full(
        real(region, template, method).shape, 0.9, np.float32))
    correlation, where = match_picture(query, (100, 50, 200, 150), boot)  # around a flat part only
    assert (correlation, where) == (-1.0, None)
    assert match_picture(query, (0, 0, 60, 60), boot)[0] == pytest.approx(0.9)  # near the noise: as OpenCV says


def test_a_picture_matched_again_is_not_prepared_again_and_answers_the_same(pasted, monkeypatch):
    """A search service checks the same thumbnails query after query: each is resized to the compared
    sizes once (:func:`~semcopy_lib.segment.template._templates`), and the answers do not change."""
    import gc

    from semcopy_lib.segment import template

    query, box, boot, _ = pasted
    picture = read_thumbnail(thumbnail(boot))
    watched, resized = [picture], []
    real = Image.Image.resize

    def counted(image, *args, **kwargs):
        if image.mode != "RGBa":  # Pillow resizes RGBA through a premultiplied copy
            resized.append(image.size)
        return real(image, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", counted)
    first = match_picture(query, box, picture)
    # the region once, each of the config's sizes of the picture once, and the two sizes of each halving
    config = template.TemplateConfig()
    assert len(resized) == 1 + len(config.scales) + 2 * config.halvings
    resized.clear()
    shifted = match_picture(query, (box[0] + 3, box[1], box[2], box[3]), picture)
    assert match_picture(query, box, picture) == first and shifted[0] > 0.9
    assert len(resized) == 2 * (1 + 2 * config.halvings)  # the config's sizes were kept
    assert match_picture(query, box, picture.copy()) == first  # another picture: made again, the same
    mine = [key for key in template._TEMPLATES if key[0] == id(picture)]
    watched.clear()
    del picture
    gc.collect()
    assert len(mine) == 1 and mine[0] not in template._TEMPLATES  # a picture's templates go with it


def test_an_opaque_pictures_templates_go_with_it_too(pasted):
    """A picture without transparency is compared whole: nothing the cache keeps may hold it alive."""
    import gc

    from semcopy_lib.data.loading import to_rgb
    from semcopy_lib.segment import template

    query, box, boot, _ = pasted
    picture = to_rgb(read_thumbnail(thumbnail(boot)))
    match_picture(query, box, picture)
    mine = [key for key in template._TEMPLATES if key[0] == id(picture)]
    del picture
    gc.collect()
    assert len(mine) == 1 and mine[0] not in template._TEMPLATES


def test_pictures_compared_again_mirrored_too_are_not_prepared_again(pasted, monkeypatch):
    """`semcopy dedup` compares a thumbnail with one picture after another, each way round and mirrored:
    the mirror image is kept while its picture lives, so its templates are made once too."""
    import gc

    from semcopy_lib.segment import template

    _, _, boot, _ = pasted
    a = read_thumbnail(thumbnail(boot))
    b = read_thumbnail(thumbnail(ImageOps.mirror(boot.rotate(5))))
    config = template.TemplateConfig(work_side=64, scales=(0.8, 0.9, 1.0), halvings=0)
    made = []
    real = template._template
    monkeypatch.setattr(template, "_template", lambda *args: made.append(1) or real(*args))
    first = template.pixel_evidence(a, b, config)
    assert len(made) == 4 * len(config.scales)  # a, b and their two mirror images, at each size
    assert template.pixel_evidence(a, b, config) == first and len(made) == 4 * len(config.scales)
    assert template._mirrored(a) is template._mirrored(a)
    key = id(a)
    del a
    gc.collect()
    assert key not in template._MIRRORS  # a picture's mirror image goes with it


def test_no_scale_fits_a_hairline_region(pasted):
    query, _, boot, _ = pasted
    assert match_picture(query, (0, 0, 200, 4), read_thumbnail(thumbnail(boot))) == (-1.0, None)


def boot_copy(crop: float = 0.8) -> Image.Image:
    """The boot on white, cropped to ``crop`` of its size around its middle and saved as JPEG: a copy."""
    import io

    from semcopy_lib.data.loading import to_rgb

    boot = to_rgb(drawing())
    w, h = boot.size
    cw, ch = round(w * crop), round(h * crop)
    cut = boot.crop(((w - cw) // 2, (h - ch) // 3, (w - cw) // 2 + cw, (h - ch) // 3 + ch))
    buffer = io.BytesIO()
    cut.save(buffer, "JPEG", quality=60)
    return Image.open(buffer).convert("RGB")


@pytest.mark.parametrize("crop", [0.7, 0.85, 1.0])
def test_a_copy_is_found_inside_its_picture_and_not_inside_its_mirror(crop):
    """The other way round: a copy (crop + JPEG) slid over each picture's thumbnail."""
    copy = boot_copy(crop)
    boot = read_thumbnail(thumbnail(drawing()))
    mirror = read_thumbnail(thumbnail(ImageOps.mirror(drawing())))
    inside = match_crop(copy, boot)
    assert inside > 0.9
    assert match_crop(copy, mirror) < inside - 0.2
    assert match_crop(Image.new("RGB", (300, 200), "white"), boot) == -1.0  # a blank query matches nothing
    assert match_crop(Image.new("RGB", (300, 200), (200, 30, 30)), boot) == -1.0  # nor a flat colour (was 1.0)


def test_a_copy_is_looked_for_only_at_the_shares_the_config_names():
    """A crop of 70 % of the picture is found at the default shares (0.6-1.0); looked for only as the
    whole picture, it is not there."""
    from semcopy_lib.segment.template import TemplateConfig

    copy, boot = boot_copy(0.7), read_thumbnail(thumbnail(drawing()))
    assert match_crop(copy, boot) > 0.9
    assert match_crop(copy, boot, TemplateConfig(crop_shares=(1.0,))) < 0.7


@pytest.mark.parametrize("share", [0.75, 0.76, 0.85])
def test_a_crop_between_the_shares_tried_correlates_as_one_on_them(share):
    """Crisp shapes: at 40 pixels, a crop looked for 0.05 off its share misses its edges by a pixel."""
    from semcopy_lib.segment.template import TemplateConfig

    art = Image.new("RGB", (400, 300), "white")
    draw = ImageDraw.Draw(art)
    draw.polygon([(40, 250), (140, 40), (240, 250)], fill=(30, 90, 200), outline=(0, 0, 0), width=6)
    draw.rectangle((220, 80, 360, 200), fill=(230, 180, 20), outline=(0, 0, 0), width=6)
    draw.ellipse((270, 180, 380, 280), fill=(200, 40, 40), outline=(0, 0, 0), width=6)
    w, h = round(art.width * share), round(art.height * share)
    copy = art.crop((art.width - w, art.height - h, art.width, art.height))
    picture = read_thumbnail(thumbnail(art))
    assert match_crop(copy, picture) > 0.98
    assert match_crop(copy, picture, TemplateConfig(crop_refine=())) < 0.95  # the shares alone
    assert match_crop(copy, read_thumbnail(thumbnail(ImageOps.mirror(art)))) < 0.6


def twin_index(root, pasted, others: int) -> SearchService:
    """An index under ``root`` of the boot, its mirror and ``others`` generated pictures, with thumbnails."""
    gallery = root / "gallery" / "boots"
    gallery.mkdir(parents=True)
    _, _, boot, mirror = pasted
    boot.save(gallery / "boot.png")
    mirror.save(gallery / "mirror.png")
    rng = random.Random(1)
    for i in range(others):
        compose.random_picture(rng, (160, 120)).save(gallery / f"other{i}.jpg")
    build_index(root / "gallery", root / "idx", progress=False)
    return SearchService(root / "idx")


@pytest.fixture(scope="module")
def twins(tmp_path_factory, pasted):
    """An index of the boot, its mirror and three generated pictures, with thumbnails."""
    return twin_index(tmp_path_factory.mktemp("twins"), pasted, 3)


def test_index_keeps_one_thumbnail_per_image_and_drops_it_with_the_image(twins):
    ids = ["boots/boot.png", "boots/mirror.png", "boots/other0.jpg", "boots/other1.jpg", "boots/other2.jpg"]
    thumbs = twins.index.thumbs(ids + ["boots/none.png"])
    assert sorted(thumbs) == ids
    assert read_thumbnail(thumbs["boots/boot.png"]).mode == "RGBA"
    assert read_thumbnail(thumbs["boots/other0.jpg"]).size == (96, 72)
    assert twins.index.remove(["boots/other2.jpg"]) == []
    assert "boots/other2.jpg" not in twins.index.thumbs(ids)


def test_verification_ranks_the_pasted_picture_over_its_twin(twins, pasted):
    query, box, _, _ = pasted
    query = query.copy()
    query.info["original_size"] = query.size
    # the embedding put the mirror first, slightly: the pixels say which boot is on the photo
    ranked = [SearchHit("boots/mirror.png", 0.80, "boots", "", box, "subject"),
              SearchHit("boots/boot.png", 0.78, "boots", "", box, "subject"),
              SearchHit("boots/other0.jpg", 0.70, "boots", "", box, "subject")]
    verified = twins._verified(query, ranked)
    assert [h.gallery_id for h in verified] == ["boots/boot.png", "boots/mirror.png", "boots/other0.jpg"]
    thumbs = twins.index.thumbs(["boots/boot.png", "boots/mirror.png", "boots/other0.jpg"])
    boot, mirror, other = (match_picture(query, box, read_thumbnail(thumbs[g]))[0] for g in sorted(thumbs))
    assert boot > 0.9 and other < VERIFY_FROM
    assert verified[0].score == pytest.approx(0.78 + VERIFY_WEIGHT * (boot - VERIFY_FROM))
    assert verified[1].score == pytest.approx(0.80 + VERIFY_WEIGHT * max(0.0, mirror - VERIFY_FROM))
    assert verified[2].score == 0.70  # a picture that is not there gains nothing
    # the verified boot reports where it sits, tighter than the region that found it
    assert verified[0].region_kind == "match" and iou(verified[0].query_box, shown(box, pasted[2])) > 0.8
    assert verified[2].region_kind == "subject" and verified[2].query_box == box


def test_a_picture_is_looked_for_around_the_other_regions_that_found_it(twins, pasted):
    """A page's hit whose best region is a whole post (its picture there under the sizes tried) is found
    in place around the other photos that found it, best first, ``elsewhere`` of them at most."""
    query, box, _, _ = pasted
    query = query.copy()
    query.info["original_size"] = query.size
    whole, decoy = (0, 0, *query.size), (380, 250, 120, 120)  # the decoy holds none of the boot's box
    ranked = [SearchHit("boots/boot.png", 0.78, "boots", "", whole, "photo")]
    found_at = {"boots/boot.png": [whole, decoy, box]}
    [alone] = twins._verified(query, ranked)
    assert alone == ranked[0]  # around the whole image alone it is not found
    config = twins.config.verify
    thumbs = twins._thumbnails(["boots/boot.png"])
    [hit] = verified(query, ranked, ranked, thumbs, config, None, found_at=found_at)
    correlation, where = match_picture(query, box, thumbs["boots/boot.png"], config.template, config.start)
    assert correlation > 0.9
    assert hit.region_kind == "match" and hit.query_box == where and iou(where, shown(box, pasted[2])) > 0.8
    assert hit.score == pytest.approx(0.78 + VERIFY_WEIGHT * (correlation - VERIFY_FROM))
    assert verified(query, ranked, ranked, thumbs, replace(config, elsewhere=1), None, found_at=found_at) == ranked


def test_search_finds_the_pasted_boot_first_and_where_it_sits(twins, pasted, tmp_path):
    query, box, _, _ = pasted
    path = tmp_path / "query.png"
    query.save(path)
    [result] = twins.search([path], k=2)
    top = result.hits[0]
    assert result.layout == "single" and top.gallery_id == "boots/boot.png"
    assert top.region_kind == "match" and iou(top.query_box, shown(box, pasted[2])) > 0.8
    assert ("match", top.query_box) in [(r.kind, r.box) for r in result.regions]


def test_hits_out_of_reach_of_the_first_two_are_not_checked(twins, pasted, monkeypatch):
    """A perfect match adds VERIFY_WEIGHT x (1 - VERIFY_FROM) at most: hits further below the second are
    left alone (and cost nothing)."""
    from semcopy_lib.query import verify as verify_module

    query, box, _, _ = pasted
    query = query.copy()
    query.info["original_size"] = query.size
    checked = []
    monkeypatch.setattr(verify_module, "match_picture", lambda q, b, p, c, *_: checked.append(p.size) or (1.0, b))
    ranked = [SearchHit("boots/mirror.png", 0.80, "boots", "", box, "subject"),
              SearchHit("boots/other0.jpg", 0.79, "boots", "", box, "subject"),
              SearchHit("boots/boot.png", 0.79 - VERIFY_WEIGHT * (1 - VERIFY_FROM) - 0.01, "boots", "", box, "subject")]
    assert twins._verified(query, ranked)[2] == ranked[2] and len(checked) == 2


def test_an_index_without_thumbnails_keeps_the_embedding_ranking(twins, pasted):
    query, box, _, _ = pasted
    query = query.copy()
    query.info["original_size"] = query.size
    ranked = [SearchHit("boots/mirror.png", 0.80, "boots", "", box, "subject"),
              SearchHit("boots/boot.png", 0.78, "boots", "", box, "subject")]
    twins.index.store.conn.execute("DELETE FROM thumbs")  # as in an index built before thumbnails were kept
    assert twins._verified(query, ranked) == ranked


def test_building_again_gives_an_older_index_its_thumbnails(gallery_dir, tmp_path):
    """Images that `index build` finds unchanged get the thumbnail an older index lacks, and nothing else
    moves: same vectors, same generation (searchers need not catch up)."""
    index, _ = build_index(gallery_dir, tmp_path / "idx", progress=False)
    ids = [r.gallery_id for r in index.records()]
    index.store.conn.execute("DELETE FROM thumbs")  # as built before thumbnails were kept
    generation, vectors = index.store.generation, index.image_vectors()[1]
    index.close()
    index, report = build_index(gallery_dir, tmp_path / "idx", progress=False)
    assert not report.added and len(report.unchanged) == len(set(ids))
    assert sorted(index.thumbs(ids)) == sorted(set(ids))
    assert index.store.generation == generation and (index.image_vectors()[1] == vectors).all()


@pytest.fixture()
def boot_twins(tmp_path, pasted):
    """An index of its own (another test empties the shared one's thumbnails): the boots and two others."""
    return twin_index(tmp_path, pasted, 2)


def test_a_copy_of_one_twin_ranks_it_first(boot_twins, tmp_path, monkeypatch):
    """A copy of the boot is at copy level for both boots; the embedding may put the mirror first
    (made so here): checking which picture the copy was cut from puts the boot first, exact scores."""
    twins = boot_twins
    path = tmp_path / "copy.jpg"
    boot_copy(0.8).save(path)
    real_search = twins.index.search

    def mirror_first(vectors, k, encoder=None, whole=False, small=None):  # the two boots' scores swapped, as for near-twins
        out = real_search(vectors, k=k, encoder=encoder, whole=whole, small=small)
        for hits in out:
            scores = {h.gallery_id: h.score for h in hits}
            if {"boots/boot.png", "boots/mirror.png"} <= set(scores):
                a, b = scores["boots/boot.png"], scores["boots/mirror.png"]
                swap = {"boots/boot.png": min(a, b), "boots/mirror.png": max(a, b)}
                hits[:] = sorted((replace(h, score=swap.get(h.gallery_id, h.score)) for h in hits), key=lambda h: -h.score)
        return out

    monkeypatch.setattr(twins.index, "search", mirror_first)
    monkeypatch.setattr(twins.encoder, "copy_score", 0.0)  # whatever the tiny gallery scores, it is a copy
    [plain] = twins.search([path], k=2, regions=False)
    assert [h.gallery_id for h in plain.hits] == ["boots/mirror.png", "boots/boot.png"]
    [result] = twins.search([path], k=2, vote=False)
    thumbs = twins.index.thumbs(["boots/boot.png"])
    correlation = match_crop(Image.open(path).convert("RGB"), read_thumbnail(thumbs["boots/boot.png"]))
    assert correlation > 0.9
    boot_plain = next(h for h in plain.hits if h.gallery_id == "boots/boot.png").score
    closed = (correlation - VERIFY_FROM) / (1 - VERIFY_FROM)  # of the gap to 1
    assert result.hits[0].gallery_id == "boots/boot.png"
    assert result.hits[0].score == pytest.approx(boot_plain + (1 - boot_plain) * closed) and result.hits[0].score <= 1
    assert result.hits[0].region_kind == "whole" and result.layout == "single"


def test_a_residual_hit_found_pixel_for_pixel_closes_its_gap_to_copy_level(boot_twins, pasted, monkeypatch):
    """A copy query's residual hit whose picture is there gains as a copy does, towards copy level instead
    of 1; checked even below the first five hits. Whole-image hits keep the copy check."""
    query, box, _, _ = pasted
    query = query.copy()
    query.info["original_size"] = query.size
    monkeypatch.setattr(boot_twins.encoder, "copy_score", 0.6)
    whole = (0, 0, *query.size)
    # five whole-image hits above the residual's (ids of pictures it holds or not: only the residual's matter)
    ranked = [SearchHit(f"boots/other{i}.jpg", 0.9 - 0.05 * i, "boots", "", whole, "whole") for i in range(5)]
    ranked += [SearchHit("boots/boot.png", 0.40, "boots", "", box, "residual"),
               SearchHit("boots/mirror.png", 0.39, "boots", "", box, "residual")]
    verified = boot_twins._verified(query, ranked, copy=True)
    thumbs = boot_twins.index.thumbs(["boots/boot.png"])
    boot = match_picture(query, box, read_thumbnail(thumbs["boots/boot.png"]))[0]
    closed = (boot - VERIFY_FROM) / (1 - VERIFY_FROM)
    found = next(h for h in verified if h.gallery_id == "boots/boot.png")
    assert found.score == pytest.approx(0.40 + (0.6 - 0.40) * closed) and found.region_kind == "match"
    assert found.score > 0.40 + VERIFY_WEIGHT * (boot - VERIFY_FROM)  # more than a subject's bonus
    assert [h.gallery_id for h in verified].index("boots/boot.png") < [h.gallery_id for h in verified].index("boots/mirror.png")


def other_drawing() -> Image.Image:
    """Another clip art of the same size: a green bottle (its neck up) with a blue label."""
    img = Image.new("RGBA", (200, 160), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.rectangle((85, 10, 115, 50), fill=(30, 150, 60, 255), outline=(20, 20, 20, 255), width=4)
    draw.ellipse((40, 40, 160, 155), fill=(30, 150, 60, 255), outline=(20, 20, 20, 255), width=4)
    draw.rectangle((60, 80, 140, 110), fill=(40, 60, 200, 255))
    return img


def test_a_line_drawing_is_matched_to_its_source_by_edges():
    from semcopy_lib.data.loading import to_rgb
    from semcopy_lib.data.synth import line_art
    from semcopy_lib.segment.template import pixel_evidence, small_edge_map

    config = VerifyConfig().edges

    def edge_evidence(a, b, config):
        return pixel_evidence(small_edge_map(a), small_edge_map(b), config)

    boot, bottle = to_rgb(drawing()), to_rgb(other_drawing())
    sketch = line_art(boot)  # dark edges on white: none of the boot's colours
    assert edge_evidence(sketch, boot, config) > edge_evidence(sketch, bottle, config)
    assert edge_evidence(boot, boot, config) == pytest.approx(1.0, abs=1e-4)
    # the same comparison on the pixels themselves cannot tell: the drawing has the colours of neither
    assert pixel_evidence(sketch, boot, config) < edge_evidence(sketch, boot, config)


def test_a_colourless_query_keeps_the_whole_images_hit_when_its_edges_say_so():
    from semcopy_lib.data.loading import to_rgb
    from semcopy_lib.data.synth import line_art
    from semcopy_lib.query.verify import arbitrated

    boot, bottle = to_rgb(drawing()), to_rgb(other_drawing())
    thumbs = read_thumbnails({"boot.png": thumbnail(drawing()), "bottle.png": thumbnail(other_drawing()), "x.png": thumbnail(bottle)})
    box = (0, 0, 200, 160)
    # a part of the line drawing found the bottle first; the whole image had found the boot
    ranked = [SearchHit("bottle.png", 0.71, "c", "", (10, 10, 80, 80), "window"),
              SearchHit("x.png", 0.66, "c", "", box, "whole"),
              SearchHit("boot.png", 0.64, "c", "", (50, 40, 100, 80), "window")]
    whole_first = SearchHit("boot.png", 0.64, "c", "", box, "whole")
    config = VerifyConfig()
    sketch = line_art(boot)
    sketch.info["original_size"] = sketch.size
    out = arbitrated(sketch, ranked, whole_first, thumbs, config)
    assert [(h.gallery_id, h.score, h.region_kind) for h in out] == [
        ("boot.png", 0.71, "whole"), ("bottle.png", 0.71, "window"), ("x.png", 0.66, "whole")]
    # a query in colour is compared by its pixels elsewhere, not here; and 0 turns it off
    assert arbitrated(boot, ranked, whole_first, thumbs, config) == ranked
    assert arbitrated(sketch, ranked, whole_first, thumbs, replace(config, colourless=0.0)) == ranked
    # a line drawing of the bottle keeps the bottle first
    bottle_sketch = line_art(bottle)
    bottle_sketch.info["original_size"] = bottle_sketch.size
    assert arbitrated(bottle_sketch, ranked, whole_first, thumbs, config) == ranked
    # when the whole image's first hit is the bottle's too, nothing moves
    assert arbitrated(sketch, ranked, ranked[0], thumbs, config) == ranked


def test_on_a_colourless_page_the_first_hit_is_judged_on_the_part_that_found_it():
    """A grey page with a line drawing of the bottle beside a block of text: the page's picture found
    the bottle, the whole page found a picture of its text block. The whole page's edges line up with
    the text block (0.39) better than with the small bottle (0.32), but the page is no one picture: the
    bottle is judged on its own part of the page (0.69), and stays first."""
    from semcopy_lib.data.loading import to_rgb
    from semcopy_lib.data.synth import line_art
    from semcopy_lib.query.verify import arbitrated

    page = Image.new("RGB", (800, 500), (235, 235, 235))
    draw = ImageDraw.Draw(page)
    for y in range(40, 480, 24):
        draw.rectangle((40, y, 500, y + 8), fill=(90, 90, 90))
    text = page.crop((0, 0, 540, 500))
    page.paste(line_art(to_rgb(other_drawing())), (560, 150))  # 200 x 160
    page.info["original_size"] = page.size
    thumbs = read_thumbnails({"bottle.png": thumbnail(other_drawing()), "text.png": thumbnail(text)})
    ranked = [SearchHit("bottle.png", 0.8, "c", "", (560, 150, 200, 160), "photo"),
              SearchHit("text.png", 0.6, "c", "", (0, 0, 800, 500), "whole")]
    config = replace(VerifyConfig(), near=1.01, min_whole=0.0)  # a single picture's part not counted, nor 0.39 refused
    assert [h.gallery_id for h in arbitrated(page, ranked, ranked[1], thumbs, config)] == ["text.png", "bottle.png"]
    assert arbitrated(page, ranked, ranked[1], thumbs, config, paged=True) == ranked


def _grey_photo(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """A grey stand-in for a photo: blurred noise with a few dark branches across it."""
    from PIL import ImageFilter

    rng = np.random.default_rng(seed)
    photo = Image.fromarray((rng.random((size[1] // 32, size[0] // 32)) * 80 + 110).astype(np.uint8)).resize(size, Image.BICUBIC)
    draw = ImageDraw.Draw(photo)
    for _ in range(6):
        draw.line([tuple(int(v) for v in rng.integers(0, size[0], 2)) for _ in range(3)], fill=40, width=6)
    return photo.filter(ImageFilter.GaussianBlur(1)).convert("RGB")


def test_a_drawing_on_a_grey_photo_is_judged_around_the_part_that_found_it():
    """A grey drawing of the bottle pasted on a grey photo: a part found the bottle, the whole image
    another grey photo. On the whole image's edges the small bottle lines up less (0.33) than that photo
    (0.40); found inside the edges around its part (0.70, over ``near``), it stays first. (A line
    drawing whose part found the wrong picture still gives way to the whole image's hit: above.) Nor does
    0.40 reach ``min_whole``: a grey photo's edges line up that little with many pictures."""
    from semcopy_lib.query.verify import arbitrated
    from semcopy_lib.segment.template import edges_near, pixel_evidence, small_edge_map

    bottle = other_drawing()
    photo, other = _grey_photo((800, 600)), _grey_photo((800, 600), seed=3)
    photo.paste(ImageOps.grayscale(bottle).convert("RGB"), (520, 300), bottle.getchannel("A"))
    photo.info["original_size"] = photo.size
    thumbs = read_thumbnails({"bottle.png": thumbnail(bottle), "other.png": thumbnail(other)})
    edges = {name: small_edge_map(picture) for name, picture in thumbs.items()}
    part = (520, 300, 200, 160)
    ranked = [SearchHit("bottle.png", 0.6, "c", "", part, "subject"),
              SearchHit("other.png", 0.5, "c", "", (0, 0, 800, 600), "whole")]
    config = VerifyConfig()
    whole = small_edge_map(photo)
    assert pixel_evidence(whole, edges["other.png"], config.edges) > pixel_evidence(whole, edges["bottle.png"], config.edges)
    assert edges_near(photo, part, edges["bottle.png"], config.edges) > config.near
    assert edges_near(photo, part, edges["other.png"], config.edges) < config.near
    assert arbitrated(photo, ranked, ranked[1], thumbs, config) == ranked
    # nor does the other photo's 0.40 on the whole image reach ``min_whole``: either rule keeps the bottle
    assert arbitrated(photo, ranked, ranked[1], thumbs, replace(config, near=1.01)) == ranked
    assert arbitrated(photo, ranked, ranked[1], thumbs, replace(config, min_whole=0.0)) == ranked
    assert [h.gallery_id for h in arbitrated(photo, ranked, ranked[1], thumbs, replace(config, near=1.01, min_whole=0.0))] == [
        "other.png", "bottle.png"]


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("bad", ["junk", "truncated", "too large"])
def test_a_thumbnail_that_is_no_thumbnail_is_left_out_not_raised(tmp_path, pasted, bad):
    """An index folder is untrusted: a thumbnail that does not decode, or has more pixels than a thumbnail
    (here the boot itself at 200 px, which would otherwise verify), is as if missing (the hit keeps the
    embedding's score) instead of failing the search."""
    boot = pasted[2]
    png = {"junk": b"not a png", "truncated": thumbnail(boot)[:40],
           "too large": _png(boot.resize((200, round(200 * boot.height / boot.width))))}[bad]
    service = twin_index(tmp_path, pasted, 1)
    service.index.store.conn.execute("UPDATE thumbs SET png = ? WHERE gallery_id = 'boots/boot.png'", (png,))
    service.index.store.conn.commit()
    query, box, _, _ = pasted
    query = query.copy()
    query.info["original_size"] = query.size
    ranked = [SearchHit("boots/mirror.png", 0.80, "boots", "", box, "subject"),
              SearchHit("boots/boot.png", 0.78, "boots", "", box, "subject")]
    verified = service._verified(query, ranked)
    assert [(h.gallery_id, h.score) for h in verified][1] == ("boots/boot.png", 0.78)
    path = tmp_path / "query.png"
    query.save(path)
    [result] = service.search([path], k=2)
    assert result.error is None and "boots/boot.png" in [h.gallery_id for h in result.hits]


def test_a_thumbnail_left_out_is_named_in_one_line(caplog):
    """The warning names the gallery image whose thumbnail is bad, on one line."""
    good = thumbnail(Image.new("RGBA", (120, 60), (255, 0, 0, 128)))
    with caplog.at_level("WARNING"):
        images = read_thumbnails({"boots/boot.png": good, "boots/bad.png": b"\x89PNG\r\n\x1a\n junk"})
    assert list(images) == ["boots/boot.png"] and images["boots/boot.png"].mode == "RGBA"
    assert images["boots/boot.png"].size == (96, 48)
    [record] = caplog.records
    assert "the thumbnail of boots/bad.png" in record.getMessage() and "\n" not in record.getMessage()


def test_a_drawing_pasted_over_most_of_a_gallery_picture_finds_it_by_the_rest(tmp_path, pasted, monkeypatch):
    """The boot pasted over 80 % of a gallery picture: the boot is found in place first, and the rest of the
    query beside it (its largest strip) is found inside the gallery picture, which then joins the first two
    hits, with the strip as its region (without it, only a window finds it, no higher than a look-alike of the boot)."""
    twins = twin_index(tmp_path, pasted, 3)  # its own: another test empties the shared one's thumbnails
    _, _, boot, _ = pasted
    background = load_image(twins.index.gallery_file("boots/other0.jpg"))
    query, box = compose.on_background(boot, background, random.Random(0), scale=(0.8, 0.8))
    sources = {"boots/other0.jpg", "boots/boot.png"}
    [result] = twins.search([query], k=5)
    [strip] = [r.box for r in result.regions if r.kind == "rest"]
    assert iou(strip, shown(box, boot)) < 0.05 and strip[2] * strip[3] >= twins.config.rest.min_share * query.width * query.height
    assert {h.gallery_id for h in result.hits[:2]} == sources
    photo = next(h for h in result.hits if h.gallery_id == "boots/other0.jpg")
    assert (photo.region_kind, photo.query_box) == ("rest", strip)
    assert next(h for h in result.hits if h.gallery_id == "boots/boot.png").region_kind == "match"
    config = twins.config
    monkeypatch.setattr(twins, "config", replace(config, proposers=tuple(p for p in config.proposers if p != "rest")))
    [plain] = twins.search([query], k=5)
    assert "rest" not in {r.kind for r in plain.regions}
    window = next(h for h in plain.hits if h.gallery_id == "boots/other0.jpg")
    twin = next(h for h in plain.hits if h.gallery_id == "boots/mirror.png")
    assert window.region_kind == "window" and window.score - twin.score < 0.05 and photo.score - window.score > 0.3


def test_a_photo_found_by_a_part_only_is_compared_whole_and_what_is_pasted_on_it_is_found(tmp_path, pasted, monkeypatch):
    """A drawing pasted large on a sparse photo can move the whole image's vector under copy level while a
    window or subject still finds the photo at copy level: the whole query is then compared with that
    photo, and the boot pasted on it is its residual (simulated here by damping the whole image's scores)."""
    service = twin_index(tmp_path, pasted, 3)
    _, _, boot, _ = pasted
    query, box = compose.on_background(boot, load_image(service.index.gallery_file("boots/other1.jpg")),
                                       random.Random(0), scale=(0.4, 0.4))
    search, calls = service.index.search, []

    def whole_damped(vectors, k=10, encoder=None, whole=False, small=None):
        found = search(vectors, k=k, encoder=encoder, whole=whole, small=small)
        calls.append(len(vectors))
        return [[replace(h, score=0.6 * h.score) for h in hits] for hits in found] if len(calls) == 1 else found

    monkeypatch.setattr(service.index, "search", whole_damped)
    [result] = service.search([query], k=4)
    assert calls[0] == 1 and result.hits[0].gallery_id == "boots/other1.jpg"
    [part] = [r.box for r in result.regions if r.kind == "residual"]
    assert iou(part, box) >= 0.7
    assert "boots/boot.png" in [h.gallery_id for h in result.hits[:2]]


def test_a_coarse_coincidence_is_not_confirmed_at_twice_the_detail_and_the_pasted_picture_is():
    """A dark figure dotted with small light spots, and the same figure without its spots (what a photo's
    dark suit is to a drawn groom): at the work side the spots are under a pixel and both correlate over
    ``start``; compared again at ``confirm_side``, only the figure itself does."""
    def figure(dots: bool) -> Image.Image:
        img = Image.new("RGBA", (240, 200), (0, 0, 0, 0))
        draw = ImageDraw.Draw(img)
        draw.ellipse((10, 10, 230, 190), fill=(30, 35, 60, 255))
        draw.rectangle((60, 85, 180, 115), fill=(220, 200, 170, 255))
        for x in range(30, 220, 12) if dots else ():
            for y in (y for y in range(30, 180, 12) if not 80 < y < 120):
                draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=(235, 235, 240, 255))
        return img

    thumb = read_thumbnail(thumbnail(figure(dots=True)))
    photo = compose.random_picture(random.Random(0), (512, 384))
    confirmed = VerifyConfig().template
    assert confirmed.confirm_side == 2 * confirmed.work_side
    found = {}
    for dots in (True, False):
        query = photo.copy()
        query.paste(figure(dots), (150, 100), figure(dots))
        found[dots] = [match_picture(query.convert("RGB"), (150, 100, 240, 200), thumb, config)[0]
                       for config in (replace(confirmed, confirm_side=0), confirmed)]
    assert min(found[True]) > 0.94  # the figure: found at both sides
    assert found[False][0] > VERIFY_FROM + 0.1 > VERIFY_FROM > found[False][1]  # its plain twin: only coarsely


def test_bands_counts_the_stripes_of_a_striped_picture_and_nothing_else():
    from semcopy_lib.segment.template import bands

    def striped_image(colours, vertical=False):
        flag = Image.new("RGB", (96, 64))
        for k, colour in enumerate(colours):
            box = (0, 64 * k // len(colours), 96, 64 * (k + 1) // len(colours) - 1)
            ImageDraw.Draw(flag).rectangle(box, fill=colour)
        return flag.transpose(Image.Transpose.TRANSPOSE) if vertical else flag

    assert bands(striped_image(["white", "red"])) == 2
    assert bands(striped_image(["blue", "white", "red"], vertical=True)) == 3
    jpeg = io.BytesIO()
    striped_image(["black", "yellow", "red"]).save(jpeg, "JPEG", quality=60)
    assert bands(Image.open(jpeg)) == 3
    assert bands(drawing()) == 0  # outlines across both axes
    assert bands(Image.new("RGB", (96, 64), "white")) == 0  # nothing changes


def test_a_picture_that_outlives_the_modules_names_leaves_no_error(monkeypatch):
    """At exit Python clears a module's names, those starting with "_" first, and pictures still alive die
    after: the cache's callback must not need those names (it printed "Exception ignored ... 'NoneType'
    object is not callable" after a script's last search)."""
    import gc
    import sys

    from semcopy_lib.segment import template

    picture = Image.new("RGB", (40, 30), "red")
    template._mirrored(picture)
    key, cache = id(picture), template._MIRRORS
    raised = []
    monkeypatch.setattr(sys, "unraisablehook", raised.append)
    for name in [name for name in vars(template) if name.startswith("_") and not name.startswith("__")]:
        monkeypatch.setattr(template, name, None)
    del picture
    gc.collect()
    assert raised == [] and key not in cache


def test_a_copys_picture_ranks_above_the_look_alikes_of_what_it_does_not_explain():
    """A drawing pasted on a gallery photo: the photo (found inside, whole-image cosine 0.66) and the
    residual part's first hit are the two sources; the part's second and later hits (other smileys of
    a series) pass the photo only by the part's first."""
    from semcopy_lib.query.verify import copy_before_alternatives

    whole, part, other = (0, 0, 384, 303), (15, 0, 128, 125), (200, 150, 60, 60)
    ranked = [SearchHit("smiley116.png", 0.85, None, "", part, "residual"),
              SearchHit("smiley108.png", 0.80, None, "", part, "match"),  # verified in place: kind match
              SearchHit("bottle.png", 0.79, None, "", other, "residual"),  # a second part's first hit
              SearchHit("smiley100.png", 0.78, None, "", part, "residual"),
              SearchHit("coins.png", 0.66, None, "", whole, "whole"),
              SearchHit("gravel.png", 0.40, None, "", whole, "whole")]
    parts = {"smiley116.png": part, "smiley108.png": part, "bottle.png": other, "smiley100.png": part}
    moved = copy_before_alternatives(ranked, "coins.png", parts)
    assert [h.gallery_id for h in moved] == ["smiley116.png", "coins.png", "smiley108.png", "bottle.png",
                                              "smiley100.png", "gravel.png"]
    assert moved[1].score == np.nextafter(0.80, 1.0) and moved[1].region_kind == "whole"
    assert [h.score for h in moved[2:]] == [0.80, 0.79, 0.78, 0.40]  # the others keep theirs
    assert copy_before_alternatives(ranked, None, parts) == ranked  # no copy found inside: as it was
    above = [replace(ranked[4], score=0.9), *ranked[:4]]  # the photo already above the look-alikes: as it was
    assert copy_before_alternatives(above, "coins.png", parts) == above


def test_a_copy_found_inside_its_photo_is_lifted_above_a_residual_part_s_look_alikes(boot_twins, pasted):
    """Through the pixel check of a copy: the copied picture is the whole-image hit the query was found
    inside (``seen``), even when it is not among the hits checked."""
    query, box, _, _ = pasted
    query = query.copy()
    query.info["original_size"] = query.size
    whole = (0, 0, *query.size)
    ranked = [SearchHit(f"boots/other{i}.jpg", 0.9 - 0.01 * i, "boots", "", box, "residual") for i in range(6)]
    ranked += [SearchHit("boots/photo.jpg", 0.66, "boots", "", whole, "whole")]
    verified = boot_twins._verified(query, ranked, copy=True, seen={"boots/photo.jpg": VERIFY_FROM + 0.2})
    assert [h.gallery_id for h in verified][:3] == ["boots/other0.jpg", "boots/photo.jpg", "boots/other1.jpg"]
    assert verified[1].score == np.nextafter(0.89, 1.0)
    unseen = boot_twins._verified(query, ranked, copy=True, seen={"boots/photo.jpg": VERIFY_FROM - 0.1})
    assert unseen[-1].gallery_id == "boots/photo.jpg"  # not found inside: no copy, nothing lifted


def test_a_photo_found_by_a_part_is_lifted_above_the_look_alikes_of_what_it_does_not_explain(boot_twins, pasted):
    """A single picture whose part found a gallery photo that the whole query aligns with (``copied``):
    the same rule as for a copy, though the query is not one."""
    query, box, _, _ = pasted
    query = query.copy()
    query.info["original_size"] = query.size
    ranked = [SearchHit(f"boots/other{i}.jpg", 0.9 - 0.01 * i, "boots", "", box, "residual") for i in range(6)]
    ranked += [SearchHit("boots/photo.jpg", 0.66, "boots", "", (0, 0, 40, 40), "window")]
    verified = boot_twins._verified(query, ranked, copied="boots/photo.jpg")
    assert [h.gallery_id for h in verified][:3] == ["boots/other0.jpg", "boots/photo.jpg", "boots/other1.jpg"]
    assert verified[1].region_kind == "window" and verified[1].score == np.nextafter(0.89, 1.0)
    assert boot_twins._verified(query, ranked)[-1].gallery_id == "boots/photo.jpg"  # not known: as it was


def test_a_residual_part_pasted_at_a_slant_finds_its_picture_turned_over_its_mirror():
    """A copy of a photo with the boot pasted on it turned 20°: of the residual part's two hits, the
    mirror image first by its cosine, the boot is found in place turned and goes first (kind ``match``).
    Upright only (no ``turned_kinds``), neither is found and the cosines' order stays; a subject's hits
    are not looked for turned."""
    boot = drawing()
    rng = random.Random(1)
    query, box = compose.on_background(boot, compose.random_picture(rng, (512, 384)), rng, scale=(0.45, 0.45),
                                       turn=20, visible=True)
    query.info["original_size"] = query.size
    thumbs = read_thumbnails({"boot.png": thumbnail(boot), "mirror.png": thumbnail(ImageOps.mirror(boot))})
    whole = SearchHit("photo.jpg", 0.95, "photos", "", (0, 0, *query.size), "whole")

    def order(kind: str, config: VerifyConfig, copy: bool) -> list[tuple[str, str]]:
        ranked = [whole, SearchHit("mirror.png", 0.45, "c", "", box, kind), SearchHit("boot.png", 0.44, "c", "", box, kind)]
        found = verified(query, ranked, ranked, thumbs, config, 0.6, copy=copy)
        return [(h.gallery_id, h.region_kind) for h in found]

    assert order("residual", VerifyConfig(), True) == [("photo.jpg", "whole"), ("boot.png", "match"), ("mirror.png", "residual")]
    upright = VerifyConfig(turned_kinds=())
    assert order("residual", upright, True) == [("photo.jpg", "whole"), ("mirror.png", "residual"), ("boot.png", "residual")]
    assert order("subject", VerifyConfig(), False) == [("photo.jpg", "whole"), ("mirror.png", "subject"), ("boot.png", "subject")]
