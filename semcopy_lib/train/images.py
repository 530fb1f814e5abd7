"""Training an encoder's own layers on images (e.g. the CLIP x BLIP fusion), where features cannot be
cached because the trainable part sits between the backbones and the vector.

Same recipe as the head (:class:`semcopy_lib.train.fit.Recipe`): P x K batches of training classes, each
image seen as two of its semantic-copy views (the original half of the time), CombinedLoss, AdamW with a
per-step warm-up and cosine schedule; the held-out classes report R@1 of each copy kind against their originals and
class-level mAP@10 (:func:`~semcopy_lib.train.fit.evaluate`, as for heads).
"""

from __future__ import annotations

import random
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from semcopy_lib.data import GalleryFile, read_files
from semcopy_lib.train.features import FeatureCache, PKSampler, split_classes
from semcopy_lib.train.fit import Recipe, TrainConfig, evaluate
from semcopy_lib.train.views import VIEW_KINDS, one_view

#: Training images are decoded once, at most this large.
MAX_SIDE = 512


def fit_encoder(files: Sequence[GalleryFile], encoder, config: TrainConfig, photos: Sequence = (),
                progress: bool = True, on_epoch=None) -> dict:
    """Train ``encoder.trainable_parameters()`` in place.

    Returns ``{"history": one row per epoch (loss parts, held-out R@1), "before": held-out R@1 before
    training, "train_classes", "val_classes", "skipped": (path, reason) of unreadable files}``.
    """
    images, labels, skipped = [], [], []
    for f, image in read_files(files, skipped, max_side=MAX_SIDE, keep_alpha=True):
        images.append(image)
        labels.append(f.label)
    train_classes, val_classes = split_classes(labels, config.val_fraction)
    train = [i for i, label in enumerate(labels) if label in set(train_classes)]
    val = [i for i, label in enumerate(labels) if label in set(val_classes)]
    if len({labels[i] for i in train}) < 2:
        raise ValueError(f"too few training classes ({len(set(train_classes))}): need 2 or more")
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    sampler = PKSampler([labels[i] for i in train], config.p, config.k, seed=config.seed)
    recipe = Recipe(config, encoder.trainable_parameters(), config.epochs * len(sampler))
    classes = {label: n for n, label in enumerate(sorted(set(labels)))}
    val_rng = lambda: random.Random(config.seed)  # noqa: E731  (the same held-out copies every time)
    before = _held_out(encoder, [images[i] for i in val], [labels[i] for i in val], val_rng(), photos) if len(val) >= 2 else {}
    history = []
    for epoch in tqdm(range(config.epochs), desc=f"train {encoder.name}", unit="epoch", disable=not progress):
        encoder.train()
        for batch in sampler:
            idx = [train[j] for j in batch]
            kinds_a = ["original" if rng.random() < 0.5 else rng.choice(VIEW_KINDS[1:]) for _ in idx]
            kinds_b = [rng.choice([k for k in VIEW_KINDS if k != a]) for a in kinds_a]
            pixels = [torch.stack([encoder.preprocess(one_view(images[i], kind, rng, photos)) for i, kind in zip(idx, kinds)])
                      for kinds in (kinds_a, kinds_b)]
            a, b = (encoder(p.to(encoder.device)) for p in pixels)
            recipe.step(a, b, torch.tensor([classes[labels[i]] for i in idx], device=a.device))
        encoder.eval()
        row = recipe.epoch_row(epoch + 1)
        if len(val) >= 2:
            row.update(_held_out(encoder, [images[i] for i in val], [labels[i] for i in val], val_rng(), photos))
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
    return {"history": history, "before": before, "train_classes": len(train_classes), "val_classes": len(val_classes),
            "skipped": skipped}


def _held_out(encoder, images: list, labels: list[str], rng: random.Random, photos: Sequence) -> dict[str, float]:
    """:func:`~semcopy_lib.train.fit.evaluate` of held-out images: R@1 of each copy kind against the
    originals, and class-level mAP@10."""
    features = np.stack([encoder.embed([one_view(im, kind, rng, photos) for kind in VIEW_KINDS]) for im in images])
    return evaluate(FeatureCache(features, list(labels), [str(i) for i in range(len(images))], encoder.name))
