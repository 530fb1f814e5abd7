"""Re-ranking a query's merged hits by what its neighbours agree on (the class vote)."""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

import numpy as np

from semcopy_lib.query.config import VoteConfig

#: A frozen dataclass hit with ``gallery_id``, ``score`` and ``label`` (the service's ``SearchHit``).
Hit = TypeVar("Hit")


def voted(ranked: list[Hit], copy_score: float | None = None, config: VoteConfig = VoteConfig()) -> list[Hit]:
    """``ranked`` (best first) re-scored by the class vote of its first ``config.top`` hits and sorted
    again: each hit gains ``config.weight`` x the share of ``score ** config.power`` over those hits that
    hits of its class hold. Hits at ``copy_score`` (1 when None) or more are copies: they vote but keep
    their score, and no other hit is lifted to their level; hits that this ceiling makes equal keep their
    order in ``ranked``. Unchanged when all hits have one class (or none). Neighbours that agree on a
    class pull in its other images."""
    votes: dict[str | None, float] = {}
    for hit in ranked[: config.top]:
        votes[hit.label] = votes.get(hit.label, 0.0) + max(hit.score, 0.0) ** config.power
    total = sum(votes.values())
    if config.weight <= 0 or total <= 0 or len({h.label for h in ranked}) < 2:
        return ranked
    ceiling = float(np.nextafter(1.0 if copy_score is None else copy_score, -np.inf))
    rescored = [h if h.score >= ceiling else
                replace(h, score=min(ceiling, h.score + config.weight * votes.get(h.label, 0.0) / total)) for h in ranked]
    # a stable sort: hits that the ceiling makes equal keep their order (a verified hit above a look-alike)
    return sorted(rescored, key=lambda h: -h.score)
