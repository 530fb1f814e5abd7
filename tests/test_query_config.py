"""The search settings: one typed config, saved in the index manifest, printed by `index info`."""

import json
import re
from dataclasses import replace

import pytest
from PIL import Image

from semcopy_lib.app import SearchService
from semcopy_lib.cli import main
from semcopy_lib.query import QueryConfig
from semcopy_lib.segment.residual import ResidualConfig


@pytest.fixture(scope="module")
def index_dir(gallery_index):
    return gallery_index  # each test puts back what it edits


def _edit(index_dir, change) -> None:
    manifest = index_dir / "manifest.json"
    data = json.loads(manifest.read_text())
    change(data)
    manifest.write_text(json.dumps(data))


def test_the_config_round_trips_through_json():
    config = replace(QueryConfig(), chunk=8, residual=replace(ResidualConfig(), shares=(0.5, 1.0), mirror=False))
    assert QueryConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert QueryConfig.from_dict(None) == QueryConfig() == QueryConfig.from_dict({"merge": {}})
    assert QueryConfig.from_dict({"verify": {"template": {"scales": [1.0]}}}).verify.template.scales == (1.0,)


def test_a_nested_setting_missing_from_a_manifest_takes_the_default_of_where_it_sits():
    """An index saved before a setting existed lacks it: inside ``verify.template`` it takes the verify
    stage's default for it, not a bare ``TemplateConfig``'s (0: confirmation off, -1: every size refined)."""
    saved = QueryConfig().to_dict()
    for name in ("confirm_side", "refine_from"):
        del saved["verify"]["template"][name]
    saved["verify"]["template"]["scales"] = [1.0]
    template = QueryConfig.from_dict(saved).verify.template
    assert template == replace(QueryConfig().verify.template, scales=(1.0,))
    assert (template.confirm_side, template.refine_from) == (80, 0.5)


@pytest.mark.parametrize("bad, message", [
    ({"bogus": 1}, "query: unknown setting(s) bogus"),
    ({"merge": {"photo": "high"}}, "query.merge.photo: expected a list of numbers"),
    ({"merge": {"window": [0.9]}}, "query.merge.window: expected [slope, offset]"),
    ({"verify": {"top": 2.5}}, "query.verify.top: expected a whole number, got 2.5"),
    ({"residual": []}, "query.residual: expected an object, got list"),
    ({"residual": {"mirror": 1}}, "query.residual.mirror: expected true or false, got 1"),
    ({"residual": {"min_level": True}}, "query.residual.min_level: expected a number, got True"),
    ({"lift": {"methods": ["matte", "magic"]}}, "query.lift.methods: 'magic' not among grabcut, matte"),
])
def test_a_bad_setting_is_named(bad, message):
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        QueryConfig.from_dict(bad)


def test_a_new_index_saves_the_defaults_and_searches_with_what_its_manifest_says(index_dir, capsys):
    assert json.loads((index_dir / "manifest.json").read_text())["query"] == QueryConfig().to_dict()
    assert main(["index", "info", "--index", str(index_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["query"]["merge"]["whole"] == [1.0, 0.0]
    saved = json.loads((index_dir / "manifest.json").read_text())["query"]
    _edit(index_dir, lambda d: d["query"]["merge"].update(tile=[0.5, 0.1]))
    try:
        assert SearchService(index_dir).config.merge.map_of("tile") == (0.5, 0.1)
        assert main(["index", "info", "--index", str(index_dir)]) == 0
        assert "query.merge.tile: [0.5, 0.1]" in capsys.readouterr().out
    finally:
        _edit(index_dir, lambda d: d.update(query=saved))


def test_an_index_saved_with_one_weight_per_part_searches_as_it_did():
    """Indexes saved before the per-kind maps had a whole, a part and a window weight: read as slopes."""
    merge = QueryConfig.from_dict({"merge": {"whole_weight": 1.0, "part_weight": 0.9, "window_weight": 0.8}}).merge
    assert merge.map_of("whole") == (1.0, 0.0) and merge.map_of("window") == (0.8, 0.0)
    assert merge.map_of("subject") == merge.map_of("residual") == merge.map_of("any-new-kind") == (0.9, 0.0)


def test_an_index_saved_with_signed_refine_offsets_reads_them_as_step_sizes():
    """Before the halving search, ``residual.refine`` held offsets from the best share, either sign."""
    old = QueryConfig.from_dict({"residual": {"refine": [-0.0375, -0.025, -0.0125, 0.0125, 0.025, 0.0375]}})
    assert old.residual.refine == (0.0375, 0.025, 0.0125)
    assert QueryConfig.from_dict({"residual": {"refine": [0.05, 0.025]}}).residual.refine == (0.05, 0.025)


def test_merging_puts_each_kind_on_the_whole_images_scale_and_keeps_each_id_once():
    from semcopy_lib.app.results import SearchHit
    from semcopy_lib.query import MergeConfig, merge_hits

    merge = MergeConfig(window=(0.5, 0.4), subject=(1.0, -0.1))
    whole = [SearchHit("a/1.png", 0.70, "a", None, (0, 0, 10, 10), "whole"),
             SearchHit("b/2.png", 0.60, "b", None, (0, 0, 10, 10), "whole")]
    window = [SearchHit("b/2.png", 0.70, "b", None, (0, 0, 5, 5), "window")]  # 0.5 * 0.7 + 0.4 = 0.75
    subject = [SearchHit("a/1.png", 0.75, "a", None, (1, 1, 4, 4), "subject")]  # 0.75 - 0.1 = 0.65
    [(owner, ranked)] = merge_hits([(7, "whole", whole), (7, "window", window), (7, "subject", subject)], merge).items()
    assert owner == 7 and [(h.gallery_id, round(h.score, 6), h.region_kind) for h in ranked] == [
        ("b/2.png", 0.75, "window"), ("a/1.png", 0.7, "whole")]


def test_an_index_without_settings_searches_with_the_defaults_and_a_broken_one_says_where(index_dir, gallery_dir, capsys):
    query = str(next(gallery_dir.rglob("img01.png")))
    saved = json.loads((index_dir / "manifest.json").read_text())["query"]
    try:
        _edit(index_dir, lambda d: d.pop("query"))
        assert SearchService(index_dir).config == QueryConfig()
        _edit(index_dir, lambda d: d.update(query={"vote": {"weigth": 0.2}}))
        assert main(["search", "--index", str(index_dir), "--json", query]) != 0
        err = capsys.readouterr().err
        assert "manifest.json: query.vote: unknown setting(s) weigth" in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    finally:
        _edit(index_dir, lambda d: d.update(query=saved))


def test_a_registered_toy_proposer_is_searched_and_its_boxes_are_in_search_json(index_dir, gallery_dir, capsys):
    """A new proposer is one function and its registration; naming it in the index's config makes
    search crop and search its boxes (reported in file pixels, with its kind)."""
    from semcopy_lib.query import PROPOSERS, Proposal, register_proposer

    @register_proposer("toy-corner")
    def corner(query):
        w, h = query.image.size
        return [Proposal((0, 0, w // 2, h // 2), "corner")]

    query = str(next(gallery_dir.rglob("img01.png")))
    saved = json.loads((index_dir / "manifest.json").read_text())["query"]
    try:
        # a gallery image is its own copy: only the copy stage's proposers would run, so regions of
        # every query are asked for by a service without a copy level
        _edit(index_dir, lambda d: d["query"].update(proposers=["toy-corner"]))
        assert SearchService(index_dir).config.proposers == ("toy-corner",)
        service = SearchService(index_dir)
        service.encoder.copy_score = None
        [result] = service.search([query], k=3)
        assert [(r.kind, r.box) for r in result.regions][:2] == [("whole", (0, 0, 256, 256)), ("corner", (0, 0, 128, 128))]
        # the CLI searches what the manifest says: a query that copies no gallery image gets the toy's box
        other = gallery_dir.parent / "toy-query.png"
        Image.effect_mandelbrot((200, 120), (-2, -1.2, 1, 1.2), 60).convert("RGB").save(other)
        assert main(["search", "--index", str(index_dir), "--json", str(other)]) == 0
        line = json.loads(capsys.readouterr().out)
        assert line["regions"] == [{"box": [0, 0, 200, 120], "kind": "whole"}, {"box": [0, 0, 100, 60], "kind": "corner"}]
    finally:
        _edit(index_dir, lambda d: d.update(query=saved))
        PROPOSERS.pop("toy-corner")


def test_an_unknown_proposer_in_the_manifest_is_one_line_naming_it(index_dir, gallery_dir, capsys):
    query = str(next(gallery_dir.rglob("img01.png")))
    saved = json.loads((index_dir / "manifest.json").read_text())["query"]
    try:
        _edit(index_dir, lambda d: d["query"].update(proposers=["layout", "nope"]))
        assert main(["search", "--index", str(index_dir), "--json", query]) != 0
        err = capsys.readouterr().err
        assert "manifest.json: unknown proposer(s) nope; registered: cards, layout, objects, pasted, residual, rest, subjects, windows" in err
        assert len(err.strip().splitlines()) == 1
    finally:
        _edit(index_dir, lambda d: d.update(query=saved))


@pytest.mark.parametrize("bad, message", [
    ({"proposers": "layout"}, "query.proposers: expected a list of names"),
    ({"windows": {"cells": [5, 7.5]}}, "query.windows.cells: expected a list of whole numbers"),
])
def test_lists_of_names_and_whole_numbers_are_checked(bad, message):
    with pytest.raises(ValueError, match="^" + message + "$"):
        QueryConfig.from_dict(bad)
    assert QueryConfig.from_dict({"windows": {"cells": [3]}, "proposers": ["windows"]}).windows.cells == (3,)


def test_only_hits_that_a_perfect_match_could_lift_into_the_first_two_are_checked():
    from semcopy_lib.app.results import SearchHit
    from semcopy_lib.query import VerifyConfig
    from semcopy_lib.query.verify import to_check

    def hit(i, score, kind="whole"):
        return SearchHit(f"a/{i}.png", score, "a", None, (0, 0, 1, 1), kind)

    ranked = [hit(0, 0.9), hit(1, 0.8), hit(2, 0.7), hit(3, 0.6, "residual")]
    config = VerifyConfig(top=4, start=0.7, weight=0.5)  # a perfect match adds 0.5 * 0.3 = 0.15: reach 0.8 - 0.15
    assert [h.gallery_id for h in to_check(ranked, config, copy=False)] == ["a/0.png", "a/1.png", "a/2.png"]
    assert [h.gallery_id for h in to_check(ranked[:1], config, copy=False)] == ["a/0.png"]
    # a copy's first hits are all checked, and the residual's beyond them
    config = VerifyConfig(top=3, start=0.7, weight=0.5)
    assert [h.gallery_id for h in to_check(ranked, config, copy=True)] == ["a/0.png", "a/1.png", "a/2.png", "a/3.png"]
    assert to_check([], config, copy=True) == []


def test_the_layout_thresholds_of_the_config_decide_what_a_query_is(index_dir, gallery_dir):
    """A 2 x 2 collage of gallery photos is a collage by default; with thresholds that no grid and no
    cover can reach, its pictures are a page's photos."""
    import random

    from semcopy_lib.data import compose, load_image
    from semcopy_lib.segment import LayoutConfig

    photos = [load_image(p) for p in sorted(gallery_dir.rglob("img0[0-3].png"))]
    query, _ = compose.collage(photos[0], photos[1:], random.Random(1), 2, 2, gutter=12, tile=200, colour=(255, 255, 255))
    service = SearchService(index_dir)
    [result] = service.search([query], k=3)
    assert result.layout == "collage" and "tile" in {r.kind for r in result.regions}
    never = LayoutConfig(grid_frame=1.01, collage_cover=1.01)
    service.config = replace(service.config, layout=never)
    [result] = service.search([query], k=3)
    assert result.layout == "screenshot" and "photo" in {r.kind for r in result.regions}
    assert "tile" not in {r.kind for r in result.regions}
    assert QueryConfig.from_dict({"layout": {"grid_cover": 0.5}}).layout.grid_cover == 0.5


def test_the_subject_thresholds_of_the_config_reach_the_subjects_proposer():
    """Two drawn discs on white: both are boxed by default; ``subjects.top = 1`` keeps the larger, and
    a ``min_area`` above both discs' share keeps none."""
    from PIL import ImageDraw

    from semcopy_lib.encoders import create_encoder
    from semcopy_lib.query import QueryImage
    from semcopy_lib.query.proposers.subjects import subjects
    from semcopy_lib.segment import Layout, SubjectsConfig, iou

    page = Image.new("RGB", (480, 360), (255, 255, 255))
    draw = ImageDraw.Draw(page)
    draw.ellipse((40, 40, 200, 200), fill=(200, 30, 30), outline=(0, 0, 0), width=4)  # 160 px: 15 % of the page
    draw.ellipse((300, 200, 400, 300), fill=(30, 30, 200), outline=(0, 0, 0), width=4)  # 100 px: 6 %
    encoder = create_encoder("effnet-lite0")

    def boxes(config):
        return [p.box for p in subjects(QueryImage(page, encoder, config, _layout=Layout("single")))]

    both = boxes(QueryConfig())
    assert len(both) == 2 and iou(both[0], (40, 40, 161, 161)) >= 0.8 and iou(both[1], (300, 200, 101, 101)) >= 0.8
    assert boxes(replace(QueryConfig(), subjects=SubjectsConfig(top=1))) == both[:1]
    assert boxes(replace(QueryConfig(), subjects=SubjectsConfig(min_area=0.2))) == []


def test_a_proposer_s_box_past_the_image_is_clipped_in_one_place():
    """Whatever a proposer returns, the boxes handed on lie inside the query (propose() clips them)."""
    from semcopy_lib.encoders import create_encoder
    from semcopy_lib.query import PROPOSERS, Proposal, QueryConfig, register_proposer
    from semcopy_lib.query.propose import QueryImage, propose

    @register_proposer("toy-overhang")
    def overhang(query):
        w, h = query.image.size
        return [Proposal((w - 10, -5, 40, h + 20), "overhang"), Proposal((-30, h + 3, 10, 10), "outside")]

    try:
        image = Image.new("RGB", (50, 394), "white")  # the narrow picture that once crashed the segmenter
        query = QueryImage(image, create_encoder("effnet-lite0"), QueryConfig(proposers=("toy-overhang",)))
        [found] = propose([query], "regions")
        assert [p.box for p in found] == [(40, 0, 10, 394), (0, 393, 10, 1)]
    finally:
        PROPOSERS.pop("toy-overhang")


def test_turned_views_bring_back_a_slanted_subject_and_list_its_region_once(index_dir, gallery_dir, tmp_path):
    """With ``turns``, a subject region is also embedded turned; its hits are its best view's, and it is
    listed once. A gallery picture given a quarter turn is its own copy again when turned back."""
    from dataclasses import replace

    from semcopy_lib.query import PROPOSERS, Proposal, TurnsConfig, calibrated, register_proposer, turned_views

    @register_proposer("toy-subject")
    def whole_subject(query):
        w, h = query.image.size
        return [Proposal((0, 0, w, h), "subject")]

    source = next(gallery_dir.rglob("img01.png"))
    turned = tmp_path / "turned.png"
    Image.open(source).convert("RGB").rotate(-90, expand=True).save(turned)
    try:
        service = SearchService(index_dir)
        service.encoder.copy_score = None
        service.config = replace(service.config, proposers=("toy-subject",))

        def subject_score(angles):
            service.config = replace(service.config, turns=TurnsConfig(angles=angles))
            [result] = service.search([turned], k=3, vote=False)
            assert [r.kind for r in result.regions] == ["whole", "subject"]
            return {h.gallery_id: h.score for h in result.hits if h.region_kind == "subject"}

        gallery_id = source.relative_to(gallery_dir).as_posix()
        turned_back, as_given = subject_score((90.0,)), subject_score(())
        # a subject hit's cosine is mapped onto the whole image's scale (merge): compare the two
        assert turned_back[gallery_id] == pytest.approx(calibrated(1.0, "subject", service.config.merge), abs=1e-3)
        assert as_given.get(gallery_id, 0.0) < turned_back[gallery_id] - 0.05
    finally:
        PROPOSERS.pop("toy-subject")
    # the uncovered corners take the crop's border colour
    [view] = turned_views(Image.new("RGB", (40, 20), (10, 200, 30)), (45,))
    assert view.size[0] > 40 and view.getpixel((0, 0)) == (10, 200, 30)
