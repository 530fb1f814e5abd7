"""A residual projection head on a frozen encoder's embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResidualHead(nn.Module):
    """x -> normalize(x + W2 gelu(W1 x)); W2 starts at zero, so an untrained head is the backbone itself.

    Starting from the identity means training can only move the embedding where the loss asks,
    keeping what the backbone already does well (exact and cropped copies).

    Args:
        dim: embedding size in and out (D).
        hidden: width of the hidden layer.
    """

    def __init__(self, dim: int, hidden: int = 512):
        super().__init__()
        self.dim, self.hidden = dim, hidden
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D) embeddings -> (B, D) L2-normalised embeddings."""
        x = F.normalize(x.float(), dim=-1)
        return F.normalize(x + self.fc2(F.gelu(self.fc1(x))), dim=-1)
