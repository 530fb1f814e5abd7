"""Evaluation: retrieval metrics and seeded benchmarks."""

from semcopy_lib.metrics import average_precision_at_k, map_at_k, micro_average_precision, mrr, recall_at_k

__all__ = ["average_precision_at_k", "map_at_k", "micro_average_precision", "mrr", "recall_at_k"]
