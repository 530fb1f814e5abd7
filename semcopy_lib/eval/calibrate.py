"""Calibrating the merge of region hits on the benchmark's tuning split (``semcopy bench calibrate``).

A hit found by a window, a subject crop or a collage tile (the kinds of :data:`FITTED`) has the same cosine scale as a whole-image
hit but not the same meaning: a query has 29 windows and one whole image, so its best window hit
reaches a given cosine by chance far more often. For every region kind we fit, on the tuning split's
queries (the regions benchmark's kinds and the copies benchmark's), the probability that the kind's
best hit of a query is right given its cosine, ``sigmoid(a_k * cosine + b_k)`` (logistic regression),
and map each kind onto the whole image's scale: the cosine a whole-image hit needs to be as likely
right. Both fits are monotone, so the map is ``slope * cosine + offset`` with
``slope = a_k / a_whole`` and ``offset = (b_k - b_whole) / a_whole``; it goes into
:class:`~semcopy_lib.query.MergeConfig`.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from semcopy_lib.app import SearchService
from semcopy_lib.data import scan_images
from semcopy_lib.eval.copies import make_copy_queries
from semcopy_lib.eval.regions import background_photos, make_region_queries
from semcopy_lib.query import MergeConfig

#: The kinds fitted: those searched when the whole image is not a copy, whose best hit competes with the
#: whole image's first hit (what the fit models). A ``residual`` hit competes with the second hit beside
#: a copy, which this fit does not model: it keeps its map.
FITTED = ("photo", "tile", "subject", "object", "window", "card")
#: A kind is fitted when its best hits include at least this many right and this many wrong ones
#: (else it keeps the map it has): a logistic fit on fewer is noise.
MIN_EACH = 15


class _Recording(SearchService):
    """A search service that keeps, per query and region kind, the best raw hit of that kind."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.best: dict[int, dict[str, tuple[float, str]]] = {}

    def _merge(self, found):
        for owner, kind, hits in found:
            if hits:
                mine = self.best.setdefault(owner, {})
                if kind not in mine or hits[0].score > mine[kind][0]:
                    mine[kind] = (hits[0].score, hits[0].gallery_id)
        return super()._merge(found)


def collect(index_dir: os.PathLike | str, images_dir: os.PathLike | str, out_dir: os.PathLike | str,
            per_kind: int = 50, n_copies: int = 100, seed: int = 0, split: str = "tuning",
            device: str | None = None, progress: bool = False) -> dict[str, list[tuple[float, bool]]]:
    """Per region kind, (cosine of the kind's best hit, whether it is right) for every query of
    ``split``'s regions and copies benchmarks that the kind searched (``progress``: a bar of the queries
    searched on stderr)."""
    service = _Recording(index_dir, device=device)
    photos = background_photos(service, split)
    out = Path(out_dir)
    wanted: list[tuple[Path, frozenset[str]]] = [
        (q.path, frozenset({q.gallery_id} | ({q.also} if q.also else set())))
        for q in make_region_queries(images_dir, out / "regions", per_kind, seed, backgrounds=photos, split=split)]
    copies, _ = make_copy_queries(scan_images(images_dir), out / "copies", split, n_copies, seed, photos)
    wanted += [(q.path, q.relevant) for q in copies]
    samples: dict[str, list[tuple[float, bool]]] = {}
    chunk = service.config.chunk
    bar = tqdm(total=len(wanted), desc="searching", unit="query", disable=not progress)
    for start in range(0, len(wanted), chunk):
        part = wanted[start : start + chunk]
        service.best.clear()
        results = service.search([p for p, _ in part], k=10)
        for result, (_, relevant) in zip(results, part):
            for kind, (score, gallery_id) in service.best.get(id(result), {}).items():
                samples.setdefault(kind, []).append((score, gallery_id in relevant))
        bar.update(len(part))
    bar.close()
    return samples


def logistic(samples: list[tuple[float, bool]]) -> tuple[float, float] | None:
    """(a, b) of P(right | cosine) = sigmoid(a * cosine + b), or None with fewer than :data:`MIN_EACH`
    right or wrong samples (or a fit that does not rise with the cosine)."""
    from sklearn.linear_model import LogisticRegression

    x = np.array([[s] for s, _ in samples], dtype=np.float64)
    y = np.array([r for _, r in samples], dtype=np.int64)
    if min(int(y.sum()), int(len(y) - y.sum())) < MIN_EACH:
        return None
    fit = LogisticRegression(C=1e4).fit(x, y)  # nearly unregularised: the cosine is one feature
    a, b = float(fit.coef_[0, 0]), float(fit.intercept_[0])
    return (a, b) if a > 0 else None


def fit_merge(samples: dict[str, list[tuple[float, bool]]], start: MergeConfig = MergeConfig()) -> tuple[MergeConfig, dict]:
    """The merge maps that put every kind's cosine on the whole image's scale, and per kind what was
    fitted (``{"n", "right", "a", "b", "map"}``); kinds not in :data:`FITTED`, or too few to fit, keep ``start``'s map."""
    fits = {kind: logistic(rows) for kind, rows in samples.items()}
    whole = fits.get("whole")
    if whole is None:
        raise ValueError("the whole image's hits could not be fitted (too few right or wrong first hits)")
    maps, report = {}, {}
    for kind, rows in sorted(samples.items()):
        row = {"n": len(rows), "right": sum(r for _, r in rows)}
        fit = fits[kind]
        if fit is not None:
            row.update(a=round(fit[0], 3), b=round(fit[1], 3))
            if kind in FITTED:
                maps[kind] = (round(fit[0] / whole[0], 3), round((fit[1] - whole[1]) / whole[0], 3))
        row["map"] = list(maps.get(kind, start.map_of(kind)))
        report[kind] = row
    return replace(start, **maps), report
