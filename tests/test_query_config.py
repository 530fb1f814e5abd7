"""The search settings: one typed config, saved in the index manifest, printed by `index info`."""

import json
from dataclasses import replace

import pytest

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
    config = replace(QueryConfig(), chunk=8, residual=replace(ResidualConfig(), shares=(0.5, 1.0)))
    assert QueryConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert QueryConfig.from_dict(None) == QueryConfig() == QueryConfig.from_dict({"merge": {}})


@pytest.mark.parametrize("bad, message", [
    ({"bogus": 1}, "query: unknown setting(s) bogus"),
    ({"merge": {"part_weight": "high"}}, "query.merge.part_weight: expected a number, got 'high'"),
    ({"verify": {"top": 2.5}}, "query.verify.top: expected a whole number, got 2.5"),
    ({"residual": []}, "query.residual: expected an object, got list"),
])
def test_a_bad_setting_is_named(bad, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)") + "$"):
        QueryConfig.from_dict(bad)


def test_a_new_index_saves_the_defaults_and_searches_with_what_its_manifest_says(index_dir, capsys):
    assert json.loads((index_dir / "manifest.json").read_text())["query"] == QueryConfig().to_dict()
    assert main(["index", "info", "--index", str(index_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["query"]["merge"] == {"whole_weight": 1.0, "part_weight": 0.96,
                                                                       "window_weight": 0.95}
    _edit(index_dir, lambda d: d["query"]["merge"].update(part_weight=0.5))
    try:
        assert SearchService(index_dir).config.merge.part_weight == 0.5
        assert main(["index", "info", "--index", str(index_dir)]) == 0
        assert "query.merge.part_weight: 0.5" in capsys.readouterr().out
    finally:
        _edit(index_dir, lambda d: d["query"]["merge"].update(part_weight=0.96))


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
