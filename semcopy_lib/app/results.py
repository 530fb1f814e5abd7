"""Result types of the search service (widget-free, used by CLI, notebooks and dashboard)."""

from __future__ import annotations

from dataclasses import dataclass, field

from semcopy_lib.detect import Detection
from semcopy_lib.segment import Box, Region


@dataclass(frozen=True)
class SearchHit:
    """A gallery image found for a query: its id, class, score, file, and the query region that matched."""

    gallery_id: str
    score: float
    label: str
    source: str
    query_box: Box
    region_kind: str


@dataclass
class QueryResult:
    """Everything about one query: its regions and final ranking, or the one-line error."""

    query: str
    layout: str = "single"
    regions: list[Region] = field(default_factory=list)
    hits: list[SearchHit] = field(default_factory=list)
    objects: list[Detection] = field(default_factory=list)  # key objects, when a detector ran
    error: str | None = None


#: What a hit is to its query, by score: the same picture, the same subject, or only a weak likeness.
VERDICTS = ("copy", "same subject", "weak")


def verdict(score: float, copy: float, subject: float) -> str:
    """``"copy"`` at or above ``copy``, ``"same subject"`` at or above ``subject``, else ``"weak"``.

    Defaults for the thresholds are the encoder's ``copy_score`` and ``subject_score``.
    """
    if score >= copy:
        return VERDICTS[0]
    return VERDICTS[1] if score >= subject else VERDICTS[2]


def result_to_dict(result: QueryResult) -> dict:
    """A :class:`QueryResult` as plain JSON types (what the shared search server sends)."""
    return {
        "query": result.query, "layout": result.layout, "error": result.error,
        "regions": [[list(r.box), r.kind] for r in result.regions],
        "hits": [[h.gallery_id, h.score, h.label, h.source, list(h.query_box), h.region_kind] for h in result.hits],
        "objects": [[list(o.box), o.label, o.confidence] for o in result.objects],
    }


def result_from_dict(data: dict) -> QueryResult:
    """The inverse of :func:`result_to_dict`."""
    return QueryResult(
        query=data["query"], layout=data["layout"], error=data["error"],
        regions=[Region(tuple(box), kind) for box, kind in data["regions"]],
        hits=[SearchHit(gid, float(score), label, source, tuple(box), kind)
              for gid, score, label, source, box, kind in data["hits"]],
        objects=[Detection(tuple(box), label, float(conf)) for box, label, conf in data["objects"]],
    )
