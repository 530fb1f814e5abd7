"""Retrieval metrics: over ranked id lists (R@k, MRR, mAP@k) and over scored pairs (µAP, DISC21)."""

from __future__ import annotations

from typing import Collection, Iterable, Sequence


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


def average_precision_at_k(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """AP@k of one ranking: sum over relevant hits in the first k of precision there, / min(k, |relevant|).

    0 when nothing is relevant (such queries are counted, not skipped, by :func:`map_at_k`).
    """
    if not relevant:
        return 0.0
    hits, total = 0, 0.0
    for i, gid in enumerate(list(ranked)[:k], start=1):
        if gid in relevant:
            hits += 1
            total += hits / i
    return total / min(k, len(relevant))


def map_at_k(ranked: Sequence[Sequence[str]], relevant: Sequence[Collection[str]], k: int) -> float:
    """Mean of :func:`average_precision_at_k` over queries.

    Args:
        ranked: per query, gallery ids best first.
        relevant: per query, the set of relevant gallery ids (one id for copy retrieval; every
            gallery image of the query's class for class-level mAP).
    """
    if not relevant:
        return 0.0
    return sum(average_precision_at_k(r, rel, k) for r, rel in zip(ranked, relevant)) / len(relevant)


def micro_average_precision(predictions: Iterable[tuple[str, str, float]], truth: Iterable[tuple[str, str]]) -> float:
    """µAP over all (query, reference, score) predictions, as in the DISC21 benchmark (Douze et al. 2021).

    Every prediction of every query is ranked together by score; going down that list, precision is
    taken at each correct (query, reference) pair, and the sum is divided by the number of true
    pairs. Queries that have no match in the gallery only add false positives, so a method is
    rewarded for scoring them low. A true pair that is never predicted counts as recall lost.

    Args:
        predictions: (query, reference, score) triples, any number per query.
        truth: the true (query, reference) pairs.
    """
    positives = set(truth)
    if not positives:
        return 0.0
    ranked = sorted(predictions, key=lambda p: -p[2])
    correct, total, seen = 0, 0.0, set()
    for i, (query, reference, _) in enumerate(ranked, start=1):
        pair = (query, reference)
        if pair in positives and pair not in seen:
            seen.add(pair)
            correct += 1
            total += correct / i
    return total / len(positives)
