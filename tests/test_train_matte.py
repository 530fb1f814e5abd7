"""The subject matte's training pastes (``semcopy_lib.train.matte``): each input's box marked, each target
the pasted subject's alpha at the same pixels."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from semcopy_lib.segment.matte import SIDE
from semcopy_lib.train import matte as matte_training
from semcopy_lib.train.matte import clipart_pool, fit_matte, make_examples


def _red_disc(path):
    im = Image.new("RGBA", (200, 160), (0, 0, 0, 0))
    ImageDraw.Draw(im).ellipse((30, 20, 170, 140), fill=(230, 20, 20, 255))
    im.save(path)


@pytest.fixture
def clipart(tmp_path):
    (tmp_path / "animals").mkdir()
    (tmp_path / "food").mkdir()
    _red_disc(tmp_path / "animals" / "disc.png")
    _red_disc(tmp_path / "food" / "held-out.png")  # not a training class
    return tmp_path


def test_only_the_training_classes_are_pasted_and_a_gallery_s_names_are_left_out(clipart):
    assert [f.gallery_id for f in clipart_pool(clipart)] == ["disc.png"]
    assert clipart_pool(clipart, exclude={"disc.png"}) == []
    with pytest.raises(ValueError, match="no clip art"):
        make_examples(clipart, 1, seed=0, exclude={"disc.png"}, progress=False)


def test_each_target_is_where_its_input_shows_the_pasted_subject(clipart, monkeypatch):
    inputs, targets = make_examples(clipart, 12, seed=0, progress=False)
    assert inputs.shape == (12, SIDE, SIDE, 4) and targets.shape == (12, SIDE, SIDE)
    assert inputs.dtype == targets.dtype == np.uint8
    red = _red(inputs)
    subject = targets >= 128
    assert red[subject].mean() > 0.9  # the disc's pixels, even 70 % opaque, on photos and pictures
    # the box marked around the disc: each side off by 15 % at most, so most of the disc is inside it
    inside = inputs[..., 3] == 255
    assert (inside & subject).sum() / subject.sum() > 0.8
    # on plain grey, where only the disc is red: the target is the red pixels to a pixel (shifted by one
    # pixel, their IoU is 0.93-0.96; JPEG's colour bleeding keeps it under 1)
    monkeypatch.setattr(matte_training, "_background", lambda rng, photos: Image.new("RGB", (400, 300), (128, 128, 128)))
    inputs, targets = make_examples(clipart, 12, seed=0, progress=False)
    red, subject = _red(inputs), targets >= 128
    ious = [(r & s).sum() / (r | s).sum() for r, s in zip(red, subject)]
    assert min(ious) > 0.965, ious


def _red(inputs):
    rgb = inputs[..., :3].astype(int)
    return (rgb[..., 0] - np.maximum(rgb[..., 1], rgb[..., 2])) > 60


def test_fit_matte_learns_where_a_colour_is():
    """A bright square on dark noise is the subject: 32-px inputs (the network is convolutional), 20 epochs;
    calling every pixel background would be right at 1 - 144 / 1024 = 0.86 of them."""
    import torch

    rng = np.random.default_rng(0)
    inputs = rng.integers(0, 120, (64, 32, 32, 4), dtype=np.uint8)
    targets = np.zeros((64, 32, 32), np.uint8)
    for i in range(64):
        x, y = rng.integers(0, 32 - 12, 2)
        inputs[i, y:y + 12, x:x + 12, :3] = 250
        targets[i, y:y + 12, x:x + 12] = 255
    net, losses = fit_matte(inputs, targets, epochs=20, progress=False)
    assert losses[-1] < 0.7 * losses[0]
    with torch.no_grad():
        prob = torch.sigmoid(net(torch.from_numpy(inputs[:8]).permute(0, 3, 1, 2).float() / 255)).numpy()
    assert ((prob > 0.5) == (targets[:8] > 127)).mean() > 0.98
