"""Distances between embeddings, as objects that losses take (pytorch-metric-learning ``distances``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Distance:
    """``pairwise(a, b)``: (N, D), (M, D) -> (N, M) distances, computed in float32 whatever the input dtype."""

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.pairwise(a.float(), b.float())


class CosineDistance(Distance):
    """1 - cosine similarity, in [0, 2]; inputs need not be normalised."""

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return 1.0 - F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T

    @staticmethod
    def similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(N, D), (M, D) -> (N, M) cosine similarities in float32 (what InfoNCE scales into logits)."""
        return F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T


class EuclideanDistance(Distance):
    """L2 distance."""

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.cdist(a, b)
