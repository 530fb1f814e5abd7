"""Evaluation: retrieval metrics and seeded benchmarks."""

from semcopy_lib.eval.metrics import mrr, recall_at_k

__all__ = ["mrr", "recall_at_k"]
