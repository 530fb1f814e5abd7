"""Evaluate a search index on a query list of your own (``semcopy eval --queries Q.jsonl``).

One JSON object per line::

    {"query": "q/cat-lineart.png", "relevant": ["animals/cat.png"], "kind": "line art"}

``query`` is a path (relative paths are taken from the JSONL file's folder); ``relevant`` the gallery
ids that count as right (``[]``: the query has no match in the gallery, which only µAP can reward);
``kind`` is optional and groups the table.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from semcopy_lib.metrics import map_at_k, micro_average_precision, mrr, recall_at_k


@dataclass(frozen=True)
class EvalQuery:
    path: Path
    relevant: frozenset[str]
    kind: str


def load_queries(path: os.PathLike | str) -> list[EvalQuery]:
    """Parse a query JSONL file; a bad line raises ``ValueError`` naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    queries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            query, relevant = item["query"], item.get("relevant", [])
            if not isinstance(query, str) or not isinstance(relevant, list):
                raise TypeError("'query' must be a string and 'relevant' a list")
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}:{number}: not a query line ({type(exc).__name__}: {exc})") from None
        queries.append(EvalQuery(path.parent / query, frozenset(map(str, relevant)), str(item.get("kind", "all"))))
    return queries


def evaluate_queries(service, queries: list[EvalQuery], regions: bool = True,
                     same: Callable[[str, str], bool] | None = None) -> dict:
    """R@1, R@10, mAP@10, MRR over the queries that have a match, and µAP over all, per kind and in all;
    with ``same`` (:class:`~semcopy_lib.eval.pictures.SamePictures`), also ``r1_picture``: R@1 with a
    first hit that is the same picture as a relevant one counting.

    A query that cannot be read counts as a miss (it has no hits), and ``failed`` says how many there
    were: leaving them out would report a figure for a smaller, easier query set.
    """
    results = service.search([q.path for q in queries], k=10, regions=regions)
    errors = [r.error for r in results if r.error]
    rows = {}
    for kind in sorted({q.kind for q in queries}) + ["all"]:
        idx = [i for i, q in enumerate(queries) if kind in ("all", q.kind)]
        matched = [i for i in idx if queries[i].relevant]
        ranked = [[h.gallery_id for h in results[i].hits] for i in matched]
        first = [next((g for g in r if g in queries[i].relevant), "") for r, i in zip(ranked, matched)]
        triples = [(str(i), h.gallery_id, h.score) for i in idx for h in results[i].hits]
        truth = [(str(i), g) for i in idx for g in queries[i].relevant]
        rows[kind] = {
            "queries": len(idx),
            "failed": sum(bool(results[i].error) for i in idx),
            "r1": round(recall_at_k(ranked, first, 1), 3) if matched else None,
            "r10": round(recall_at_k(ranked, first, 10), 3) if matched else None,
            "map10": round(map_at_k(ranked, [queries[i].relevant for i in matched], 10), 3) if matched else None,
            "mrr": round(mrr(ranked, first), 3) if matched else None,
            "uap": round(micro_average_precision(triples, truth), 3),
        }
        if same is not None and matched:
            rows[kind]["r1_picture"] = round(sum(bool(r) and any(same(r[0], g) for g in queries[i].relevant)
                                                 for r, i in zip(ranked, matched)) / len(matched), 3)
    return {"kinds": rows, "errors": errors}
