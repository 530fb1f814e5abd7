"""CombinedLoss: a weighted sum of triplet and InfoNCE, with the parts returned on request."""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from semcopy_lib.losses.infonce import InfoNCELoss
from semcopy_lib.losses.triplet import TripletLoss


class CombinedLoss(nn.Module):
    """``weights["triplet"] * triplet + weights["infonce"] * infonce`` over two views of a batch.

    The triplet term mines the 2B embeddings of both views together (a view's copy is a positive,
    as is any image of the same class); InfoNCE matches each row of view a with its row of view b.

    >>> loss = CombinedLoss({"triplet": 0.5, "infonce": 0.5})
    >>> parts = loss(a, b, labels, return_parts=True)  # {"triplet", "infonce", "loss"}
    """

    def __init__(self, weights: Mapping[str, float] | None = None, triplet: TripletLoss | None = None,
                 infonce: InfoNCELoss | None = None):
        super().__init__()
        self.weights = dict(weights or {"triplet": 0.5, "infonce": 0.5})
        unknown = set(self.weights) - {"triplet", "infonce"}
        if unknown:
            raise ValueError(f"unknown loss parts {sorted(unknown)}: use 'triplet' and 'infonce'")
        self.triplet = triplet or TripletLoss()
        self.infonce = infonce or InfoNCELoss()

    def forward(self, a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor,
                return_parts: bool = False) -> torch.Tensor | dict[str, torch.Tensor]:
        """a, b: (B, D) two views; labels: (B,) -> scalar, or ``{"triplet", "infonce", "loss"}``."""
        parts = {}
        if self.weights.get("triplet", 0.0):
            parts["triplet"] = self.triplet(torch.cat([a, b]), torch.cat([labels, labels]))
        if self.weights.get("infonce", 0.0):
            parts["infonce"] = self.infonce(a, b, labels)
        total = sum(self.weights[name] * value for name, value in parts.items())
        if not parts:
            total = (a.float().sum() + b.float().sum()) * 0.0
        if return_parts:
            return {**parts, "loss": total}
        return total
