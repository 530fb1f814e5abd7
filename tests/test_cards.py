"""Cards: a rectangular picture pasted on another at a slant, found by its sides and turned back upright."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from semcopy_lib.app import SearchService, build_index
from semcopy_lib.app.results import SearchHit
from semcopy_lib.data import compose
from semcopy_lib.query.verify import to_check, verified
from semcopy_lib.segment import iou
from semcopy_lib.segment.cards import Card, CardsConfig, find_cards, upright
from semcopy_lib.segment.template import match_picture


def grass(seed: int, size=(512, 384)) -> Image.Image:
    """A busy photo-like background without straight edges: blurred blobs and strong grain."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = Image.fromarray(rng.integers(60, 200, (h // 16, w // 16, 3), dtype=np.uint8)).resize(size, Image.BICUBIC)
    draw = ImageDraw.Draw(base)
    for _ in range(40):
        x, y, r = rng.integers(0, w), rng.integers(0, h), rng.integers(4, 20)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    px = np.asarray(base.filter(ImageFilter.GaussianBlur(1)), np.float32) + rng.normal(0, 18, (h, w, 3))
    return Image.fromarray(np.clip(px, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def card_on_grass():
    """A 200 x 140 picture turned 20 degrees counter-clockwise, pasted on ``grass`` at a known place."""
    picture = compose.random_picture(random.Random(3), (200, 140))
    turned = picture.convert("RGBA").rotate(20, Image.BICUBIC, expand=True)
    query = grass(0)
    query.paste(turned, (150, 90), turned)
    return query, picture, (150, 90, *turned.size)


def test_a_card_is_found_with_its_turn_and_size(card_on_grass):
    query, picture, box = card_on_grass
    [card] = find_cards(query)
    assert card.turn == pytest.approx(20, abs=1.0)
    assert card.size == pytest.approx(picture.size, rel=0.05)
    assert card.centre == pytest.approx((box[0] + box[2] / 2, box[1] + box[3] / 2), abs=4)
    assert iou(card.box, box) > 0.9


def test_the_card_turned_upright_is_the_picture(card_on_grass):
    query, picture, _ = card_on_grass
    [card] = find_cards(query)
    back = np.asarray(upright(query, card).resize(picture.size, Image.BILINEAR), np.float32)
    original = np.asarray(picture, np.float32)
    inner = (slice(6, -6), slice(6, -6))  # the edges blend with the grass
    correlation = np.corrcoef(back[inner].ravel(), original[inner].ravel())[0, 1]
    assert correlation > 0.95
    # not turned back, the same crop is another picture
    assert np.corrcoef(np.asarray(query.crop((150 + 30, 90 + 30, 150 + 230, 90 + 170)), np.float32).ravel(),
                       original.ravel())[0, 1] < 0.5


def test_three_traced_sides_make_a_card_two_do_not():
    """A side lost in its background (a pale card on a pale backdrop): the card ends where the others end."""
    query = grass(1)
    draw = ImageDraw.Draw(query)
    corners = Card((256, 192), (220, 150), -15.0, 1.0).corners()
    draw.polygon([tuple(p) for p in corners], fill=(235, 235, 235))
    [card] = find_cards(query)
    assert card.turn == pytest.approx(-15, abs=1.0) and card.size == pytest.approx((220, 150), rel=0.05)
    background = np.asarray(query).copy()
    # the card's left side smeared into the background: three sides are left
    hidden = grass(1)
    mask = Image.new("L", query.size, 0)
    ImageDraw.Draw(mask).polygon([tuple(p) for p in corners], fill=255)
    left = Image.new("L", query.size, 0)
    ImageDraw.Draw(left).line([tuple(corners[0]), tuple(corners[3])], fill=255, width=9)
    three = Image.composite(hidden, Image.fromarray(background), left)
    assert len(find_cards(three)) == 1
    # two sides (an L of strokes) are not a card
    two = grass(1)
    ImageDraw.Draw(two).line([tuple(corners[0]), tuple(corners[1]), tuple(corners[2])], fill=(235, 235, 235), width=5)
    assert find_cards(two) == []


def test_a_picture_without_straight_sides_has_no_card():
    assert find_cards(grass(2)) == []
    assert find_cards(Image.new("RGB", (300, 200), "white")) == []


def test_a_card_box_holds_its_turned_corners():
    """Hand-computed: 40 x 20 turned 30 degrees spans 40 cos 30 + 20 sin 30 = 44.64 by 40 sin 30 + 20 cos 30 = 37.32."""
    card = Card((100.0, 50.0), (40.0, 20.0), 30.0, 1.0)
    assert card.box == (77, 31, 46, 38)
    top_right = card.corners()[1]  # turned counter-clockwise, the top right corner rises
    assert top_right == pytest.approx((100 + 20 * math.cos(math.radians(30)) - 10 * math.sin(math.radians(30)),
                                       50 - 20 * math.sin(math.radians(30)) - 10 * math.cos(math.radians(30))))
    assert Card((100.0, 50.0), (40.0, 20.0), 0.0, 1.0).box == (80, 40, 40, 20)


def test_a_card_inside_a_card_is_not_another_and_a_card_ends_where_its_sides_do():
    """A darker card on a pale one: the pale one is found, at its own size (not stretched along the
    inner card's sides), and the inner one is not listed beside it."""
    query = grass(1)
    draw = ImageDraw.Draw(query)
    draw.polygon([tuple(p) for p in Card((256, 192), (220, 150), -15.0, 1.0).corners()], fill=(235, 235, 235))
    draw.polygon([tuple(p) for p in Card((250, 190), (90, 60), -15.0, 1.0).corners()], fill=(40, 60, 160))
    [card] = find_cards(query, CardsConfig(most=5))
    assert card.size == pytest.approx((220, 150), rel=0.05) and card.centre == pytest.approx((256, 192), abs=4)
    assert find_cards(query, CardsConfig(most=0)) == []


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """An index of four generated pictures (opaque, as photos are), and a query: the second one turned 18
    degrees and pasted on grass, where its four sides stand out; its box there."""
    root = tmp_path_factory.mktemp("cards")
    gallery = root / "gallery" / "pictures"
    gallery.mkdir(parents=True)
    rng = random.Random(7)
    made = [compose.random_picture(rng, (200, 150)) for _ in range(4)]
    for i, picture in enumerate(made):
        picture.save(gallery / f"p{i}.png")
    build_index(root / "gallery", root / "idx", progress=False)
    turned = made[1].convert("RGBA").rotate(18, Image.BICUBIC, expand=True)
    query = grass(5)
    query.paste(turned, (140, 100), turned)
    path = root / "query.png"
    query.save(path)
    return root / "idx", path, (140, 100, *turned.size)


def test_a_card_first_hit_found_in_its_upright_pixels_closes_its_gap_to_the_copy_level(pictures):
    """However low the card's hit ranks, its picture is looked for in the card turned upright; found
    there (correlation c), the card is a copy of it: score + (copy level - score) x (c - start) / (1 - start)."""
    index, path, box = pictures
    service = SearchService(index)
    config = service.config.verify
    query = Image.open(path).convert("RGB")
    query.info["original_size"] = query.size
    [card] = find_cards(query)
    pixels = upright(query, card)
    ranked = [SearchHit("pictures/p0.png", 0.80, "pictures", "", (0, 0, 64, 64), "subject"),
              SearchHit("pictures/p2.png", 0.79, "pictures", "", (0, 0, 64, 64), "subject"),
              SearchHit("pictures/p1.png", 0.40, "pictures", "", card.box, "card")]
    cards = {"pictures/p1.png": [(card.box, pixels)]}
    thumbs = service._thumbnails(h.gallery_id for h in ranked)
    assert to_check(ranked, config, False) == ranked[:2]  # out of reach of the first two ...
    top = to_check(ranked, config, False, cards)
    assert top == ranked  # ... but a card's first hit is checked
    correlation, _ = match_picture(pixels, (0, 0, *pixels.size), thumbs["pictures/p1.png"], config.template, config.start)
    assert correlation > 0.95
    first = verified(query, ranked, top, thumbs, config, 0.9, cards=cards)[0]
    assert first.gallery_id == "pictures/p1.png" and first.region_kind == "match" and first.query_box == card.box
    assert first.score == pytest.approx(0.40 + (0.9 - 0.40) * min(1.0, (correlation - config.start) / (1 - config.start)))
    # without the card's pixels it is not found in the query around its box: the picture there is turned
    assert verified(query, ranked, top, thumbs, config, 0.9)[2] == ranked[2]


def test_search_finds_the_turned_picture_by_its_card(pictures):
    index, path, box = pictures
    base = SearchService(index).config
    service = SearchService(index, config=replace(base, proposers=(*base.proposers, "cards")))
    [result] = service.search([path], k=3)
    first = result.hits[0]
    assert first.gallery_id == "pictures/p1.png" and first.region_kind == "match" and iou(first.query_box, box) > 0.9
    assert ("card", first.query_box) in [(r.kind, r.box) for r in result.regions]  # found there, reported there
