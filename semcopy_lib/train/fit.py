"""Train a :class:`ResidualHead` on cached features with CombinedLoss, and measure it on unseen classes."""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from semcopy_lib.metrics import map_at_k
from semcopy_lib.losses import CombinedLoss, InfoNCELoss, TripletLoss
from semcopy_lib.train.features import FeatureCache, PKSampler
from semcopy_lib.encoders.headed import ResidualHead
from semcopy_lib.train.views import VIEW_KINDS


@dataclass
class TrainConfig:
    """How a head is trained (saved inside its checkpoint)."""

    encoder: str = "effnet-lite0"  # the frozen backbone
    encoder_path: str | None = None  # its weights (e.g. a CLIP save_pretrained folder); None: its default
    val_fraction: float = 0.25  # of the classes, held out to measure unseen subjects
    hidden: int = 512
    epochs: int = 20
    p: int = 16  # classes per batch
    k: int = 4  # images per class
    lr: float = 1e-3
    weight_decay: float = 1e-4
    weights: dict[str, float] = field(default_factory=lambda: {"triplet": 0.5, "infonce": 0.5})
    margin: float = 0.2
    mining: str = "hardest"
    temperature: float = 0.07
    learnable_temperature: bool = False
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class Recipe:
    """The training recipe of heads and of encoders' own layers: CombinedLoss (triplet + InfoNCE from
    ``config``), AdamW over ``params`` and the loss's own (a learnable temperature), and a cosine decay
    after a short warm-up, stepped every batch (not every epoch)."""

    def __init__(self, config: TrainConfig, params: list, steps: int):
        self.loss_fn = CombinedLoss(config.weights, TripletLoss(margin=config.margin, mining=config.mining),
                                    InfoNCELoss(config.temperature, learnable=config.learnable_temperature))
        self.optimiser = torch.optim.AdamW(list(params) + list(self.loss_fn.parameters()), lr=config.lr,
                                           weight_decay=config.weight_decay)
        steps, warmup = max(1, steps), max(1, steps // 20)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimiser, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
        self.sums: dict[str, float] = {}
        self.batches = 0

    def step(self, a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor) -> None:
        """One optimisation step on two views (B, D) of B items of classes ``labels`` (B,)."""
        parts = self.loss_fn(a, b, labels, return_parts=True)
        self.optimiser.zero_grad()
        parts["loss"].backward()
        self.optimiser.step()
        self.schedule.step()
        for name, value in parts.items():
            self.sums[name] = self.sums.get(name, 0.0) + float(value.detach())
        self.batches += 1

    def epoch_row(self, epoch: int) -> dict:
        """``{"epoch", <loss part>: mean over the epoch's batches}``; starts the next epoch's sums."""
        row = {"epoch": epoch, **{k: round(v / max(1, self.batches), 4) for k, v in self.sums.items()}}
        self.sums, self.batches = {}, 0
        return row


def _embed(head: ResidualHead | None, x: np.ndarray) -> np.ndarray:
    if head is None:
        return x / np.linalg.norm(x, axis=-1, keepdims=True)
    with torch.no_grad():
        return head(torch.from_numpy(x)).numpy()


def evaluate(cache: FeatureCache, head: ResidualHead | None = None, k: int = 10) -> dict[str, float]:
    """On one cache (validation classes): R@1 of each copy kind against the originals, and class-level mAP@k.

    The gallery is every image's ``original`` view; a copy must find its own original. Class-level
    mAP@k ranks the other originals for each original, the relevant ones being its class.
    """
    gallery = _embed(head, cache.features[:, 0])
    ids = np.arange(len(gallery))
    out = {}
    for v, kind in enumerate(VIEW_KINDS[1:], start=1):
        scores = _embed(head, cache.features[:, v]) @ gallery.T
        out[f"r1_{kind}"] = round(float((scores.argmax(1) == ids).mean()), 4)
    scores = gallery @ gallery.T
    np.fill_diagonal(scores, -np.inf)
    order = np.argsort(-scores, axis=1)[:, :k]
    labels = np.array(cache.labels)
    ranked = [[str(j) for j in row] for row in order]
    relevant = [{str(j) for j in np.flatnonzero(labels == labels[i]) if j != i} for i in range(len(labels))]
    out[f"class_map@{k}"] = round(map_at_k(ranked, relevant, k), 4)
    return out


def fit(train: FeatureCache, config: TrainConfig | None = None, val: FeatureCache | None = None,
        progress: bool = True, on_epoch=None) -> tuple[ResidualHead, list[dict]]:
    """Train a head; returns it and one row per epoch (mean loss parts, and validation metrics).

    Each batch takes P classes x K images; each image is seen as two of its views (the original
    half of the time, so drawings, crops and pasted subjects all learn to meet it).
    """
    config = config or TrainConfig()
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    head = ResidualHead(train.features.shape[-1], config.hidden)
    sampler = PKSampler(train.labels, config.p, config.k, seed=config.seed)
    recipe = Recipe(config, list(head.parameters()), config.epochs * len(sampler))
    classes = {label: i for i, label in enumerate(sorted(set(train.labels)))}
    features = torch.from_numpy(train.features)
    n_views = features.shape[1]
    history = []
    for epoch in tqdm(range(config.epochs), desc="train head", unit="epoch", disable=not progress):
        head.train()
        for batch in sampler:
            va = [0 if rng.random() < 0.5 else rng.randrange(1, n_views) for _ in batch]
            vb = [rng.choice([v for v in range(n_views) if v != a]) for a in va]
            idx = torch.tensor(batch)
            a = head(features[idx, torch.tensor(va)])
            b = head(features[idx, torch.tensor(vb)])
            recipe.step(a, b, torch.tensor([classes[train.labels[i]] for i in batch]))
        row = recipe.epoch_row(epoch + 1)
        if val is not None:
            head.eval()
            row.update(evaluate(val, head))
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
    head.eval()
    return head, history
