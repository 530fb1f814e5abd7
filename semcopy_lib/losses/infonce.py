"""Symmetric InfoNCE between two views of a batch (van den Oord et al. 2018; symmetric as in CLIP, Radford et al. 2021)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from semcopy_lib.losses.distances import CosineDistance


class InfoNCELoss(nn.Module):
    """Cross-entropy of each view-a row against all view-b rows (and back), the matching row the target.

    ``logits[i, j] = cos(a_i, b_j) / temperature``. Rows j != i with the same label as i are not
    negatives (another drawing of the same subject is not a mistake), so they are masked out of
    both directions. The loss is the mean of the a->b and b->a cross-entropies.

    Args:
        temperature: initial temperature.
        learnable: learn it (as log(1/temperature), clamped to at most 100 like CLIP's logit scale).
    """

    def __init__(self, temperature: float = 0.07, learnable: bool = False):
        super().__init__()
        scale = torch.tensor(math.log(1.0 / temperature))
        self.log_scale = nn.Parameter(scale) if learnable else None
        if not learnable:
            self.register_buffer("_fixed_log_scale", scale)

    @property
    def temperature(self) -> float:
        return float(1.0 / self._scale().detach())

    def _scale(self) -> torch.Tensor:
        log_scale = self.log_scale if self.log_scale is not None else self._fixed_log_scale
        return log_scale.clamp(max=math.log(100.0)).exp()

    def forward(self, a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """a, b: (B, D) two views, row i of each from item i; labels: (B,) class ids or None -> scalar."""
        logits = CosineDistance.similarity(a, b) * self._scale()
        if labels is not None:
            same = labels[:, None] == labels[None, :]
            same.fill_diagonal_(False)
            logits = logits.masked_fill(same, -torch.inf)
        target = torch.arange(len(a), device=a.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
