"""Training data: class split, cached encoder features of every view, and the P x K batch sampler."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from semcopy_lib.data import GalleryFile, read_files
from semcopy_lib.data.folders import sha256_of
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
    #: what the vectors were made from (:func:`cache_key`); "" for a cache saved before keys were kept
    key: str = ""
    #: (path, reason) of the files that could not be read
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def save(self, path) -> None:
        np.savez_compressed(path, features=self.features, labels=np.array(self.labels),
                            gallery_ids=np.array(self.gallery_ids), encoder=np.array(self.encoder), key=np.array(self.key))

    @classmethod
    def load(cls, path) -> "FeatureCache":
        data = np.load(path, allow_pickle=False)
        return cls(data["features"], data["labels"].tolist(), data["gallery_ids"].tolist(), str(data["encoder"]),
                   str(data["key"]) if "key" in data.files else "")

    def subset(self, labels: set[str]) -> "FeatureCache":
        keep = [i for i, label in enumerate(self.labels) if label in labels]
        return FeatureCache(self.features[keep], [self.labels[i] for i in keep], [self.gallery_ids[i] for i in keep],
                            self.encoder, self.key)


def cache_key(files: Sequence[GalleryFile], encoder: str, encoder_path: str | None, seed: int,
              photos: Sequence[Image.Image] | None = None) -> str:
    """sha256 over what a feature cache is made from: the encoder and its weights (a file's content, a
    folder's file names, sizes and times), the seed, the views, the backgrounds (None: the default
    ones) and every file's gallery id and content. A cache with another key is stale."""
    digest = hashlib.sha256(json.dumps([encoder, encoder_path, seed, list(VIEW_KINDS)]).encode())
    weights = Path(encoder_path) if encoder_path else None
    if weights is not None and weights.is_file():
        digest.update(sha256_of(weights).encode())
    elif weights is not None and weights.is_dir():
        for f in sorted(p for p in weights.rglob("*") if p.is_file()):
            stat = f.stat()
            digest.update(f"{f.relative_to(weights)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    for photo in photos or []:
        digest.update(hashlib.sha256(photo.tobytes()).digest())
    for f in sorted(files, key=lambda f: f.gallery_id):
        digest.update(f"{f.gallery_id}:{sha256_of(f.path)}".encode())
    return digest.hexdigest()


def build_feature_cache(files: Sequence[GalleryFile], encoder: Encoder, photos, seed: int = 0,
                        max_side: int = 512, progress: bool = True) -> FeatureCache:
    """Embed every view (:func:`~semcopy_lib.train.views.semantic_copies`) of every readable file once.

    The backbone is frozen, so training the head needs only these vectors: an epoch costs
    milliseconds instead of a forward pass per image.
    """
    rng = random.Random(seed)
    feats, labels, ids, skipped = [], [], [], []
    for f, image in read_files(tqdm(files, desc="views", unit="img", disable=not progress), skipped,
                               max_side=max_side, keep_alpha=True):
        feats.append(encoder.embed(semantic_copies(image, rng, photos)))
        labels.append(f.label)
        ids.append(f.gallery_id)
    features = np.stack(feats) if feats else np.zeros((0, len(VIEW_KINDS), encoder.dim), np.float32)
    return FeatureCache(features, labels, ids, encoder.name, skipped=skipped)


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
