"""Every threshold and weight of a search, in one typed config saved in the index manifest.

An index built with one config searches with it everywhere (CLI, dashboard, API): the manifest's
``query`` entry is read back by :class:`~semcopy_lib.app.SearchService`; an index without one (built
before the config was saved) searches with the defaults. ``semcopy index info`` prints it.
The figures behind the defaults are in docs/benchmarks.md.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from semcopy_lib.segment.residual import ResidualConfig


@dataclass(frozen=True)
class MergeConfig:
    """How much a hit's cosine counts, by the kind of query region that found it (hits of one gallery
    image keep their best region). Parts count a little less than the whole, so a clean copy keeps its rank."""

    whole_weight: float = 1.0
    part_weight: float = 0.96  # photos, tiles, subjects, objects, residuals
    window_weight: float = 0.95  # feature-map windows: many per query, so more chances of a stray hit


@dataclass(frozen=True)
class VerifyConfig:
    """Pixel checks of the first hits (:mod:`semcopy_lib.segment.template`).

    Attributes:
        top: hits checked per query.
        start: correlation from which a check counts as evidence.
        weight: a hit found in a picture gains ``weight * (correlation - start)`` (a copy instead closes
            ``(correlation - start) / (1 - start)`` of its gap to 1, so an exact copy keeps its 1).
    """

    top: int = 5
    start: float = 0.7
    weight: float = 0.5


@dataclass(frozen=True)
class VoteConfig:
    """Class vote (:func:`~semcopy_lib.query.rerank.voted`): the first ``top`` hits vote for their class
    with ``score ** power``; every hit gains ``weight`` x its class's share of the vote, among the whole
    image's ``k + depth`` best hits and the regions'."""

    top: int = 5
    weight: float = 0.1
    power: float = 4.0
    depth: int = 30


@dataclass(frozen=True)
class QueryConfig:
    """All settings of a search.

    Attributes:
        max_side: queries are analysed and cropped at most this large (boxes are reported in file pixels).
        chunk: queries decoded and embedded together (their regions share encoder batches).
    """

    max_side: int = 2048
    chunk: int = 64
    merge: MergeConfig = field(default_factory=MergeConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    vote: VoteConfig = field(default_factory=VoteConfig)
    residual: ResidualConfig = field(default_factory=ResidualConfig)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (tuples as lists), as the manifest stores it."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "QueryConfig":
        """The config of a manifest's ``query`` entry; missing settings take their defaults.

        Raises:
            ValueError: an unknown setting or a value of the wrong type (one line naming it).
        """
        return _build(cls, data or {}, "query")


def _build(cls, data: Any, where: str):
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {', '.join(unknown)}")
    values = {}
    for name, value in data.items():
        default = getattr(cls(), name)
        if hasattr(default, "__dataclass_fields__"):
            values[name] = _build(type(default), value, f"{where}.{name}")
        elif isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, (int, float)) for v in value):
                raise ValueError(f"{where}.{name}: expected a list of numbers")
            values[name] = tuple(float(v) for v in value)
        elif isinstance(default, bool) or not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"{where}.{name}: expected a number, got {value!r}")
        elif isinstance(default, int) and value != int(value):
            raise ValueError(f"{where}.{name}: expected a whole number, got {value!r}")
        else:
            values[name] = type(default)(value)
    return cls(**values)
