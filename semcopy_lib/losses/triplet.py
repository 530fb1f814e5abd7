"""Triplet margin loss with in-batch mining (Schroff et al. 2015, FaceNet; batch-hard: Hermans et al. 2017)."""

from __future__ import annotations

import torch
from torch import nn

from semcopy_lib.losses.distances import CosineDistance, Distance

MINING = ("all", "semihard", "hardest")


def mine_triplets(dist: torch.Tensor, labels: torch.Tensor, mining: str = "all",
                  margin: float = 0.2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices (anchor, positive, negative) of the triplets a batch offers.

    Args:
        dist: (B, B) distances between the batch's embeddings.
        labels: (B,) class ids; a positive shares the anchor's label (and is not the anchor),
            a negative does not.
        mining: ``all`` valid triplets; ``semihard`` those whose negative is farther than the
            positive but within the margin; ``hardest`` one per anchor: its farthest positive and
            its closest negative.

    Returns:
        Three (T,) long tensors; T = 0 when the batch has no valid triplet.
    """
    if mining not in MINING:
        raise ValueError(f"mining must be one of {MINING}, not {mining!r}")
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos, neg = same & ~eye, ~same
    if mining == "hardest":
        anchors = torch.nonzero(pos.any(1) & neg.any(1)).flatten()
        d = dist.detach()
        p = torch.where(pos, d, torch.full_like(d, -torch.inf)).argmax(1)
        n = torch.where(neg, d, torch.full_like(d, torch.inf)).argmin(1)
        return anchors, p[anchors], n[anchors]
    valid = pos[:, :, None] & neg[:, None, :]  # (a, p, n)
    if mining == "semihard":
        d = dist.detach()
        d_ap, d_an = d[:, :, None], d[:, None, :]
        valid &= (d_an > d_ap) & (d_an < d_ap + margin)
    a, p, n = torch.nonzero(valid, as_tuple=True)
    return a, p, n


class TripletLoss(nn.Module):
    """mean over mined triplets of max(0, d(a, p) - d(a, n) + margin); 0 when there is none.

    Args:
        distance: a :class:`~semcopy_lib.losses.distances.Distance` (cosine by default).
        margin: in units of that distance.
        mining: see :func:`mine_triplets`.
    """

    def __init__(self, distance: Distance | None = None, margin: float = 0.2, mining: str = "all"):
        super().__init__()
        if mining not in MINING:
            raise ValueError(f"mining must be one of {MINING}, not {mining!r}")
        self.distance = distance or CosineDistance()
        self.margin = margin
        self.mining = mining

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """embeddings: (B, D); labels: (B,) -> scalar float32 loss."""
        dist = self.distance(embeddings, embeddings)
        a, p, n = mine_triplets(dist, labels, self.mining, self.margin)
        if len(a) == 0:
            return dist.sum() * 0.0  # keeps the graph: backward() works and gives zero gradients
        return torch.relu(dist[a, p] - dist[a, n] + self.margin).mean()
