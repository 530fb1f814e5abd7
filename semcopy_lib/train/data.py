"""Training data: class split, cached encoder features of every view, and the P x K batch sampler."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from semcopy_lib.data import GalleryFile, ImageLoadError, load_image
from semcopy_lib.encoders import Encoder
from semcopy_lib.train.views import VIEW_KINDS, semantic_copies


def split_classes(labels: Sequence[str], val_fraction: float = 0.25, salt: str = "semcopy") -> tuple[set[str], set[str]]:
    """(train, validation) class names; a class goes to validation by a hash of its name, so the split
    does not depend on which other classes are present, and validation measures unseen subjects."""
    train, val = set(), set()
    for label in set(labels):
        h = int(hashlib.sha1(f"{salt}:{label}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        (val if h < val_fraction else train).add(label)
    return train, val


@dataclass
class FeatureCache:
    """Encoder embeddings of every view of every image.

    Attributes:
        features: (N, V, D) float32, L2-normalised; view v is ``VIEW_KINDS[v]``.
        labels: N class names; ``gallery_ids``: N ids.
    """

    features: np.ndarray
    labels: list[str]
    gallery_ids: list[str]
    encoder: str

    def save(self, path) -> None:
        np.savez_compressed(path, features=self.features, labels=np.array(self.labels),
                            gallery_ids=np.array(self.gallery_ids), encoder=np.array(self.encoder))

    @classmethod
    def load(cls, path) -> "FeatureCache":
        data = np.load(path, allow_pickle=False)
        return cls(data["features"], data["labels"].tolist(), data["gallery_ids"].tolist(), str(data["encoder"]))

    def subset(self, labels: set[str]) -> "FeatureCache":
        keep = [i for i, label in enumerate(self.labels) if label in labels]
        return FeatureCache(self.features[keep], [self.labels[i] for i in keep], [self.gallery_ids[i] for i in keep],
                            self.encoder)


def build_feature_cache(files: Sequence[GalleryFile], encoder: Encoder, photos, seed: int = 0,
                        max_side: int = 512, progress: bool = True) -> FeatureCache:
    """Embed every view (:func:`~semcopy_lib.train.views.semantic_copies`) of every readable file once.

    The backbone is frozen, so training the head needs only these vectors: an epoch costs
    milliseconds instead of a forward pass per image.
    """
    rng = random.Random(seed)
    feats, labels, ids = [], [], []
    for f in tqdm(files, desc="views", unit="img", disable=not progress):
        try:
            image = load_image(f.path, max_side=max_side, keep_alpha=True)
        except ImageLoadError:
            continue
        feats.append(encoder.embed(semantic_copies(image, rng, photos)))
        labels.append(f.label)
        ids.append(f.gallery_id)
    features = np.stack(feats) if feats else np.zeros((0, len(VIEW_KINDS), encoder.dim), np.float32)
    return FeatureCache(features, labels, ids, encoder.name)


class PKSampler:
    """Batches of P classes x K images (Hermans et al. 2017), so every batch holds positives for the
    triplet term. Classes with fewer than K images are sampled with replacement; classes with a
    single image still serve (their copies are their positives).

    Yields lists of indices into ``labels``; an epoch visits about ``len(labels)`` images.
    """

    def __init__(self, labels: Sequence[str], p: int = 16, k: int = 4, seed: int = 0):
        self.by_class: dict[str, list[int]] = {}
        for i, label in enumerate(labels):
            self.by_class.setdefault(label, []).append(i)
        self.p, self.k = min(p, len(self.by_class)), k
        self.rng = random.Random(seed)
        self.n = len(labels)

    def __len__(self) -> int:
        return max(1, self.n // (self.p * self.k))

    def __iter__(self) -> Iterator[list[int]]:
        classes = list(self.by_class)
        for _ in range(len(self)):
            batch = []
            for label in self.rng.sample(classes, self.p):
                items = self.by_class[label]
                picks = self.rng.sample(items, self.k) if len(items) >= self.k else self.rng.choices(items, k=self.k)
                batch += picks
            yield batch
