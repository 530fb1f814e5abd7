"""A region's subject lifted onto white (``QueryConfig.lift``): the photo around a pasted drawing painted out."""

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageDraw

from semcopy_lib.segment import lift as lift_module
from semcopy_lib.segment.lift import LiftConfig, lifted, lifted_views
from semcopy_lib.segment.matte import SIDE, SubjectMatte, load_matte, matte_input


def _photo(size=(240, 200), seed=0) -> Image.Image:
    """Grainy mid-grey noise: a background with no flat colour, as a photo's."""
    return Image.fromarray(np.random.default_rng(seed).integers(60, 200, (size[1], size[0], 3), dtype=np.uint8))


@pytest.mark.parametrize("method", ["grabcut", "matte"])
def test_a_disc_on_a_photo_keeps_its_pixels_and_the_rest_of_its_box_turns_white(method):
    photo = _photo()
    ImageDraw.Draw(photo).ellipse((70, 50, 170, 150), fill=(220, 30, 30))  # 101 px across: box (70, 50, 101, 101)
    view = lifted(photo, (70, 50, 101, 101), method=method)
    px = np.asarray(view)
    assert view.size == (101, 101)
    assert tuple(px[50, 50]) == (220, 30, 30) and tuple(px[0, 0]) == tuple(px[100, 100]) == (255, 255, 255)
    # the corners of the box outside the disc: 1 - pi * 50.5^2 / 101^2 = 0.215 of it
    assert (px == 255).all(-1).mean() == pytest.approx(1 - np.pi / 4, abs=0.02)
    # what is kept is the disc: hardly a pixel of the noise around it (its antialiased rim at most)
    kept = ~(px == 255).all(-1)
    assert (px[kept] == (220, 30, 30)).all(-1).mean() > 0.97


@pytest.mark.parametrize("method", ["grabcut", "matte"])
def test_no_view_when_the_box_holds_no_subject_or_is_too_small(method):
    assert lifted(Image.new("RGB", (100, 100), (30, 30, 30)), (20, 20, 50, 50), method=method) is None  # one colour
    assert lifted(_photo(), (5, 5, 1, 40), method=method) is None
    disc = _photo()
    ImageDraw.Draw(disc).ellipse((70, 50, 170, 150), fill=(220, 30, 30))
    # the disc covers 0.785 of its box
    assert lifted(disc, (70, 50, 101, 101), LiftConfig(max_share=0.5), method=method) is None


def test_grabcut_finds_no_subject_in_noise_like_its_surroundings():
    # (the matte, trained on boxes around a subject, gives such a box a blob of a third to a half of it)
    assert lifted(_photo(), (5, 5, 40, 40)) is None


def test_a_drawing_pasted_on_a_photo_is_nearer_its_gallery_picture_lifted(tmp_path):
    """A star pasted on a photo, searched by its box as a subject: the lifted view brings its cosine with
    the gallery's star from under 0.5 to near 0.8; with ``lift.kinds`` empty there is no such view."""
    from semcopy_lib.app import SearchService, build_index
    from semcopy_lib.data.samples import sample_photo_files
    from semcopy_lib.query import PROPOSERS, Proposal, register_proposer

    def drawing(kind: str) -> Image.Image:
        im = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
        draw = ImageDraw.Draw(im)
        if kind == "star":
            radii = [90 if i % 2 == 0 else 35 for i in range(10)]
            draw.polygon([(100 + r * np.cos(np.pi * i / 5 - np.pi / 2), 100 + r * np.sin(np.pi * i / 5 - np.pi / 2))
                          for i, r in enumerate(radii)], fill=(250, 200, 20, 255), outline=(0, 0, 0, 255), width=4)
        elif kind == "disc":
            draw.ellipse((20, 20, 180, 180), fill=(30, 90, 220, 255), outline=(0, 0, 0, 255), width=4)
        else:
            draw.polygon([(100, 15), (185, 180), (15, 180)], fill=(40, 170, 60, 255), outline=(0, 0, 0, 255), width=4)
        return im

    gallery = tmp_path / "gallery"
    gallery.mkdir()
    for kind in ("star", "disc", "triangle"):
        drawing(kind).save(gallery / f"{kind}.png")
    build_index(gallery, tmp_path / "idx", progress=False)
    query = Image.open(sorted(sample_photo_files().values())[0]).convert("RGB").resize((320, 240))
    star = drawing("star").resize((120, 120))
    query.paste(star, (150, 80), star)
    query.save(tmp_path / "query.png")

    @register_proposer("toy-pasted")
    def pasted_box(q):
        return [Proposal((150, 80, 120, 120), "subject")]

    try:
        service = SearchService(tmp_path / "idx")
        service.encoder.copy_score = None
        # the subject's own cosine: no turned views, no pixel check
        base = replace(service.config, proposers=("toy-pasted",), turns=replace(service.config.turns, angles=()),
                       verify=replace(service.config.verify, top=0))

        def cosine(kinds, methods=("grabcut", "matte")):
            service.config = replace(base, lift=LiftConfig(kinds=kinds, methods=methods))
            [result] = service.search([tmp_path / "query.png"], k=3, vote=False)
            assert [r.kind for r in result.regions] == ["whole", "subject"]
            first = result.hits[0]
            assert first.gallery_id == "star.png" and first.region_kind == "subject"
            slope, offset = service.config.merge.map_of("subject")
            return (first.score - offset) / slope

        as_cropped = cosine(())
        assert as_cropped < 0.5
        assert cosine(("subject",), ("grabcut",)) > 0.75 and cosine(("subject",), ("matte",)) > 0.75
    finally:
        PROPOSERS.pop("toy-pasted")


def test_the_matte_input_is_the_box_and_its_margin_with_the_box_marked():
    """A box (40, 10, 20, 30) of a 100 x 50 picture, margin 0.1: 3 and 4 px more a side, (37, 6) - (63, 44),
    26 x 38 px resized to 64; the box is rows round(4 * 64 / 38) = 7 … round(34 * 64 / 38) = 57 and columns
    round(3 * 64 / 26) = 7 … round(23 * 64 / 26) = 57."""
    picture = np.zeros((50, 100, 3), np.uint8)
    picture[:, 50:] = 200  # the right half light: columns 50 … 62 of the margin's 37 … 62
    x = matte_input(Image.fromarray(picture), (40, 10, 20, 30), margin=0.1)
    assert x.shape == (SIDE, SIDE, 4) and x.dtype == np.uint8
    inside = np.zeros((SIDE, SIDE), bool)
    inside[7:57, 7:57] = True
    assert (x[..., 3] == np.where(inside, 255, 0)).all()
    # 13 of its 26 columns light: the right half of the 64 px
    assert (x[:, :31, 0] == 0).all() and (x[:, 33:, 0] == 200).all()


def test_the_matte_loads_only_its_weights(tmp_path):
    import torch

    net = SubjectMatte().eval()
    torch.save(net.state_dict(), tmp_path / "matte.pt")
    loaded = load_matte(tmp_path / "matte.pt")
    x = torch.rand(2, 4, SIDE, SIDE)
    assert torch.equal(loaded(x), net(x))
    assert load_matte(tmp_path / "none.pt") is None
    torch.save(net, tmp_path / "module.pt")  # a pickled module, not weights: refused, not executed
    with pytest.raises(Exception, match="[Ww]eights only"):
        load_matte(tmp_path / "module.pt")


def test_each_method_gives_a_view_and_without_the_matte_s_weights_only_grabcut_does(monkeypatch):
    photo = _photo()
    ImageDraw.Draw(photo).ellipse((70, 50, 170, 150), fill=(220, 30, 30))
    jobs = [(photo, (70, 50, 101, 101)), (photo, (5, 5, 1, 40))]
    both = lifted_views(jobs, LiftConfig(), workers=2)
    assert [len(views) for views in both] == [2, 0]
    assert np.array_equal(np.asarray(both[0][0]), np.asarray(lifted(photo, (70, 50, 101, 101), method="grabcut")))
    assert np.array_equal(np.asarray(both[0][1]), np.asarray(lifted(photo, (70, 50, 101, 101), method="matte")))
    monkeypatch.setattr(lift_module, "load_matte", lambda: None)
    alone = lifted_views(jobs, LiftConfig(), workers=2)
    assert [len(views) for views in alone] == [1, 0]
    assert np.array_equal(np.asarray(alone[0][0]), np.asarray(both[0][0]))
