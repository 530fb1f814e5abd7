"""Calibrating the merge of region hits: a logistic fit per region kind, mapped onto the whole image's scale."""

import random

import pytest

from semcopy_lib.eval.calibrate import collect, fit_merge, logistic
from semcopy_lib.query import MergeConfig


def _samples(seed: int, n: int = 400) -> list[tuple[float, bool]]:
    """Cosines with P(right) = sigmoid(12 * cosine - 8)."""
    import math

    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        s = rng.uniform(0.3, 1.0)
        rows.append((s, rng.random() < 1 / (1 + math.exp(-(12 * s - 8)))))
    return rows


def test_a_kind_whose_cosines_are_a_squeezed_whole_image_gets_the_inverse_map():
    """Window cosines made as 0.5 * cosine + 0.3 of the very same evidence map back to the cosine:
    slope 2, offset -0.6 (logistic regression is affine-equivariant in its one feature)."""
    whole = _samples(0)
    window = [(0.5 * s + 0.3, right) for s, right in whole]
    merge, report = fit_merge({"whole": whole, "window": window, "tile": [(0.9, True)] * 3, "residual": window})
    slope, offset = merge.map_of("window")
    assert slope == pytest.approx(2.0, abs=0.01) and offset == pytest.approx(-0.6, abs=0.01)
    assert merge.map_of("whole") == pytest.approx((1.0, 0.0))
    # too few wrong ones to fit: tiles keep the map they had
    assert merge.map_of("tile") == MergeConfig().map_of("tile") and "a" not in report["tile"]
    # a residual competes with the second hit beside a copy, which the fit does not model: not fitted
    assert merge.map_of("residual") == MergeConfig().map_of("residual") and report["residual"]["a"] > 0
    assert report["window"]["n"] == 400 and report["window"]["right"] == sum(r for _, r in whole)


def test_a_fit_that_falls_with_the_cosine_or_lacks_samples_is_none_and_whole_is_required():
    assert logistic([(s, s < 0.6) for s, _ in _samples(1)]) is None
    assert logistic([(0.5, False)] * 100 + [(0.9, True)] * 5) is None
    with pytest.raises(ValueError, match="whole image"):
        fit_merge({"window": _samples(2)})


def test_collect_records_each_querys_best_hit_per_region_kind(gallery_index, gallery_dir, tmp_path):
    samples = collect(gallery_index, gallery_dir, tmp_path, per_kind=2, n_copies=2, seed=0)
    # every query is searched as its whole image: one whole sample per query (regions kinds x 2, copies kinds x 2)
    queries = sorted(p.name for p in tmp_path.rglob("*.png"))
    assert len(samples["whole"]) == len(queries)
    assert {"tile", "photo"} <= set(samples)  # collages and pages were cut
    assert all(0.0 <= s <= 1.0 + 1e-6 for rows in samples.values() for s, _ in rows)


def test_bench_calibrate_writes_the_fitted_merge_into_the_index(gallery_index, gallery_dir, tmp_path, monkeypatch, capsys):
    import json
    import shutil

    from semcopy_lib.app import SearchService
    from semcopy_lib.cli import main
    from semcopy_lib.eval import calibrate

    index = tmp_path / "idx"
    shutil.copytree(gallery_index, index)
    monkeypatch.setattr(calibrate, "MIN_EACH", 1)  # a dozen gallery photos: few queries of each kind
    assert main(["bench", "calibrate", str(gallery_dir), "--index", str(index), "-n", "2", "--copies", "2",
                 "--json", "--write"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"bench", "split", "kinds", "merge"} and out["split"] == "tuning"
    assert out["kinds"]["whole"]["map"] == [1.0, 0.0] and "a" in out["kinds"]["whole"]
    merge = SearchService(index).config.merge
    assert {kind: list(merge.map_of(kind)) for kind in out["merge"]} == out["merge"]
    assert merge != MergeConfig()  # fitted maps, not the defaults
