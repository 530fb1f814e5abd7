"""The one place that knows the JSON shapes of the CLI contract (DESIGN.md, "CLI contract")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from semcopy_lib.app.results import QueryResult


def search_json(result: QueryResult) -> dict[str, Any]:
    """``{"query", "regions": [{"box", "kind"}], "hits": [{"id", "score", "box"}]}`` or ``{"query", "error"}``."""
    if result.error is not None:
        return {"query": result.query, "error": result.error}
    return {
        "query": result.query,
        "regions": [{"box": list(r.box), "kind": r.kind} for r in result.regions],
        "hits": [{"id": h.gallery_id, "score": round(h.score, 6), "box": list(h.query_box)} for h in result.hits],
    }


#: Columns of the hackathon submission CSV (``semcopy submit``).
SUBMISSION_COLUMNS = ("image", "recs")


def submission_row(result: QueryResult, k: int = 10, image: str | None = None, full_ids: bool = False) -> dict[str, str]:
    """``{"image": <query name>, "recs": "<gallery name>,<...>"}``: its top-``k`` hits.

    ``image``: the query's name (default its file name); ``full_ids``: name hits by gallery id (path
    below the gallery folder) instead of file name, for galleries where file names repeat."""
    names = [h.gallery_id if full_ids else Path(h.source).name if h.source else Path(h.gallery_id).name
             for h in result.hits[:k]]
    return {"image": image or Path(result.query).name, "recs": ",".join(names)}


def segment_json(image: str, layout: str, boxes: list) -> dict[str, Any]:
    """``{"image", "layout", "boxes": [[x, y, w, h], ...]}``."""
    return {"image": image, "layout": layout, "boxes": [list(b) for b in boxes]}


def error_json(key: str, name: str, message: str) -> dict[str, Any]:
    """A per-item error line: ``{key: name, "error": "<one line>"}``."""
    return {key: name, "error": " ".join(message.split())}
