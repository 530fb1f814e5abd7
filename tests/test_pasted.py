"""The pasted-subject probe: boxes from a probability map, training on synthetic pastes, the bundled probe."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from semcopy_lib.segment import iou
from semcopy_lib.segment.pasted import BUNDLED, PastedProbe, boxes_from_map, cascade_boxes, load_probe
from semcopy_lib.train.pasted_probe import fit_probe, make_examples


def test_boxes_from_map_by_hand():
    prob = np.zeros((24, 24), np.float32)
    prob[6:12, 4:8] = 0.9  # 6 rows x 4 columns: mass 21.6
    prob[20:22, 20:23] = 0.95  # 2 x 3: mass 5.7
    # an image of 480 x 240: a cell is 20 x 10 pixels
    assert boxes_from_map(prob, (480, 240), threshold=0.3, top=2) == [(80, 60, 80, 60), (400, 200, 60, 20)]
    assert boxes_from_map(prob, (480, 240), threshold=0.3) == [(80, 60, 80, 60)]  # the heavier part only
    assert boxes_from_map(prob, (480, 240), threshold=0.96) == []


def test_cascade_boxes_tighten_with_the_threshold():
    prob = np.zeros((24, 24), np.float32)
    prob[4:16, 2:14] = 0.4  # a loose halo: a neighbouring object, say
    prob[6:12, 4:10] = 0.6
    prob[8:10, 6:8] = 0.8  # the subject's core
    prob[20:22, 20:22] = 0.35  # a lighter part elsewhere: never the heaviest
    # cells of 10 x 10 pixels in a 240 x 240 image
    assert cascade_boxes(prob, (240, 240), (0.3, 0.5, 0.7), 0.9) == [(20, 40, 120, 120), (40, 60, 60, 60), (60, 80, 20, 20)]
    prob[6:12, 4:10] = 0.75  # the 0.7 box is now the 0.5 box: searched once
    assert cascade_boxes(prob, (240, 240), (0.3, 0.5, 0.7), 0.9) == [(20, 40, 120, 120), (40, 60, 60, 60)]


def test_fit_probe_learns_a_cell_feature():
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(64, 152, 24, 24, generator=gen)
    targets = (feats[:, 7] > 0.5).float()  # one channel says where the subject is
    probe, losses = fit_probe(feats, targets, epochs=60, progress=False)
    assert losses[-1] < 0.5 * losses[0]
    with torch.no_grad():
        prob = probe(feats[:8])
    assert ((prob > 0.5) == (targets[:8] > 0.5)).float().mean() > 0.95


def _clip_art(seed: int) -> Image.Image:
    """A flat-coloured drawing with an outline on a transparent background, as openclipart PNGs are."""
    rng = random.Random(seed)
    img = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        x0, y0 = rng.randint(10, 90), rng.randint(10, 90)
        colour = tuple(rng.randrange(256) for _ in range(3)) + (255,)
        draw.ellipse((x0, y0, x0 + rng.randint(60, 100), y0 + rng.randint(60, 100)), fill=colour,
                     outline=(0, 0, 0, 255), width=3)
    return img


def test_make_examples_pairs_features_with_alpha_coverage(tmp_path):
    from semcopy_lib.encoders import create_encoder

    folder = tmp_path / "art" / "shapes"
    folder.mkdir(parents=True)
    for i in range(3):
        _clip_art(i).save(folder / f"a{i}.png")
    encoder = create_encoder("effnet-lite0").eval()
    feats, targets = make_examples(encoder, tmp_path / "art", photos=[], n=3, seed=0, progress=False)
    assert feats.shape == (3, 152, 24, 24) and targets.shape == (3, 24, 24)
    assert 0 <= float(targets.min()) and float(targets.max()) <= 1
    assert all(0.01 < float(t.mean()) < 0.6 for t in targets)  # 20-75 % of the side, drawn parts only


def test_probe_round_trips_through_a_weights_only_file(tmp_path):
    probe = PastedProbe()
    probe.mean.fill_(0.5)
    torch.save(probe.state_dict(), tmp_path / "p.pt")
    loaded = load_probe(tmp_path / "p.pt")
    assert torch.equal(loaded.mean, probe.mean)
    x = torch.randn(2, 152, 24, 24)
    torch.testing.assert_close(loaded(x), probe.eval()(x))
    assert load_probe(tmp_path / "missing.pt") is None


@pytest.mark.skipif(not BUNDLED.is_file(), reason="no bundled probe")
def test_the_bundled_probe_finds_a_clip_art_pasted_on_a_photo():
    from semcopy_lib.data import compose, load_image
    from semcopy_lib.data.samples import sample_photo_files
    from semcopy_lib.encoders import create_encoder

    from tests.test_encoders import windows_and_pasted

    encoder = create_encoder("effnet-lite0")
    photo = load_image(sample_photo_files()["coffee"], max_side=640)  # not a training background
    art = _clip_art(5)
    query, (x, y, w, h) = compose.on_background(art, photo, random.Random(2), scale=(0.45, 0.45))
    left, top, right, bottom = art.getchannel("A").getbbox()  # the drawn part of the pasted square
    f = w / art.width
    drawn = (x + round(left * f), y + round(top * f), round((right - left) * f), round((bottom - top) * f))
    _, _, pasted = windows_and_pasted(encoder, query)
    assert 1 <= len(pasted) <= 3 and max(iou(box, drawn) for box in pasted) >= 0.6, (pasted, drawn)
    assert all(iou(box, drawn) > 0.3 for box in pasted), (pasted, drawn)  # the tighter boxes are on it too
    # the probe reads the ImageNet weights' maps: on other weights' maps it proposes nothing
    assert windows_and_pasted(create_encoder("effnet-lite0", pretrained=False), query)[2] == []


def test_drawn_training_backgrounds_are_seeded_and_sized():
    from semcopy_lib.data import compose

    page_a, page_b = (compose.text_page(random.Random(4), (300, 200)) for _ in range(2))
    assert page_a.size == (300, 200) and np.array_equal(np.asarray(page_a), np.asarray(page_b))
    art = _clip_art(1)  # opaque where the ellipses are
    drawing = np.asarray(compose.silhouette(art, random.Random(4), (300, 200)).convert("L"), np.float32)
    backdrop = np.median(drawing)
    ink = (np.abs(drawing - backdrop) > 60).mean()  # one dark colour where the clip art is opaque
    opaque = (np.asarray(art.getchannel("A")) > 0).mean()
    # the 200-px art scaled by 0.7-1.0 onto a 300 x 200 canvas covers 0.33-0.67 of its share there
    assert 0.3 * opaque < ink < 0.7 * opaque


def test_the_probe_reads_maps_that_the_default_backbone_gives():
    from semcopy_lib.encoders.effnet import IMAGENET, INNER_BLOCKS
    from semcopy_lib.segment.pasted import BACKBONE, PROBE_BLOCKS

    assert BACKBONE == IMAGENET and set(PROBE_BLOCKS) <= set(INNER_BLOCKS)
