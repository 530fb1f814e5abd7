"""Retrieval metrics over ranked id lists (one relevant id per query)."""

from __future__ import annotations

from typing import Sequence


def recall_at_k(ranked: Sequence[Sequence[str]], truth: Sequence[str], k: int) -> float:
    """Fraction of queries whose true id is among their first ``k`` ranked ids.

    Args:
        ranked: per query, gallery ids best first.
        truth: per query, the one relevant gallery id.
    """
    if not truth:
        return 0.0
    return sum(t in list(r)[:k] for r, t in zip(ranked, truth)) / len(truth)


def mrr(ranked: Sequence[Sequence[str]], truth: Sequence[str]) -> float:
    """Mean reciprocal rank of the true id (0 for a query where it is not ranked)."""
    if not truth:
        return 0.0
    total = 0.0
    for r, t in zip(ranked, truth):
        r = list(r)
        total += 1.0 / (r.index(t) + 1) if t in r else 0.0
    return total / len(truth)
