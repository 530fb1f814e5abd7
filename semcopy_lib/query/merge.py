"""Merging the hits of a query's regions: one ranking, each gallery id once, its best region named."""

from __future__ import annotations

from dataclasses import replace
from typing import Collection, Hashable, Iterable, Sequence, TypeVar

from semcopy_lib.query.config import MergeConfig

#: A frozen dataclass hit with ``gallery_id``, ``score``, ``query_box`` and ``region_kind`` (the service's ``SearchHit``).
Hit = TypeVar("Hit")


def calibrated(score: float, kind: str, config: MergeConfig) -> float:
    """``score`` of a hit found by a region of ``kind``, on the scale of a whole-image hit's cosine."""
    slope, offset = config.map_of(kind)
    return slope * score + offset


def explained(hits: Sequence[Hit], copy_score: float, copied: Collection[str] = ()) -> list[Hit]:
    """The hits of a whole image that copies a gallery picture and shows something pasted on it (a
    ``residual`` part): only those at ``copy_score`` and those of ``copied`` (gallery ids whose pictures
    hold the query in their pixels: the twin a copy was cut from may score under the copy level). The
    rest are the picture's neighbours; they say nothing of what was pasted and would outrank the part's
    hits."""
    return [hit for hit in hits if hit.score >= copy_score or hit.gallery_id in copied]


def merge_hits(found: Iterable[tuple[Hashable, str, Sequence[Hit]]], config: MergeConfig) -> dict[Hashable, list[Hit]]:
    """Per owner (a query), its regions' hits merged: scores :func:`calibrated` by the kind of region
    that found them, each gallery id once with its best, best first (ties by id).

    Args:
        found: (owner, region kind, hits of that region) for every region searched; each hit already
            names the region's box and kind.
    """
    best: dict[Hashable, dict[str, Hit]] = {}
    for owner, kind, hits in found:
        merged = best.setdefault(owner, {})
        for hit in hits:
            score = calibrated(hit.score, kind, config)
            if hit.gallery_id not in merged or score > merged[hit.gallery_id].score:
                merged[hit.gallery_id] = replace(hit, score=score)
    return {owner: sorted(hits.values(), key=lambda h: (-h.score, h.gallery_id)) for owner, hits in best.items()}
