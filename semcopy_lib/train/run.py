"""``semcopy train``: from a folder of class folders to a head checkpoint, with before/after metrics."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from semcopy_lib.data import load_image, scan_folder
from semcopy_lib.data.samples import sample_photo_files
from semcopy_lib.encoders import create_encoder
from semcopy_lib.train.features import FeatureCache, build_feature_cache, cache_key, split_classes
from semcopy_lib.train.fit import TrainConfig, evaluate, fit
from semcopy_lib.train.views import VIEW_KINDS

log = logging.getLogger(__name__)

#: The share of copies (crop + JPEG views of unseen classes) whose own original scores at least
#: the copy threshold written into the checkpoint.
COPY_RECALL = 0.9
#: The share of semantic copies (:data:`SUBJECT_VIEWS` of unseen classes) whose own original scores at
#: least the same-subject threshold written into the checkpoint.
SUBJECT_RECALL = 0.75
SUBJECT_VIEWS = ("line_art", "pencil", "cartoon", "on_photo")


#: Pip-package photos that training pastes subjects on; the others are left for benchmark backgrounds.
TRAIN_BACKGROUNDS = ("astronaut", "bus", "cell", "china", "coins", "grace_hopper", "gravel", "hubble_deep_field",
                     "logo", "motorcycle", "present", "rocket")


def default_photos() -> list:
    """Backgrounds for the ``on_photo`` view: the :data:`TRAIN_BACKGROUNDS` installed here."""
    return [load_image(p, max_side=640) for name, p in sample_photo_files().items() if name in TRAIN_BACKGROUNDS]


def train_head(images_dir: os.PathLike | str, out: os.PathLike | str, config: TrainConfig | None = None,
               photos: list | None = None, cache: os.PathLike | str | None = None, progress: bool = True,
               on_epoch=None) -> dict:
    """Embed every view of every image once (cached at ``cache`` when given), train, save ``out``.

    Returns ``{"checkpoint", "before", "after", "history", "seconds", "train_classes", "val_classes",
    "copy_score", "subject_score", "skipped"}`` (``skipped``: (path, reason) of unreadable files; none
    when the cache was used); before/after are :func:`~semcopy_lib.train.fit.evaluate` on the held-out classes.
    """
    from semcopy_lib.encoders.headed import save_head

    config = config or TrainConfig()
    start = time.perf_counter()
    files = scan_folder(images_dir)
    if not files:
        raise ValueError(f"{images_dir}: no images found")
    key = cache_key(files, config.encoder, config.encoder_path, config.seed, photos)
    features = FeatureCache.load(cache) if cache is not None and Path(cache).is_file() else None
    if features is not None and features.key != key:
        log.warning("%s: made from other images, another encoder or other settings: embedding again", cache)
        features = None
    if features is None:
        encoder = create_encoder(config.encoder, **({"path": config.encoder_path} if config.encoder_path else {}))
        features = build_feature_cache(files, encoder, default_photos() if photos is None else photos,
                                       seed=config.seed, progress=progress)
        features.key = key
        if cache is not None:
            features.save(cache)
    train_classes, val_classes = split_classes(features.labels, config.val_fraction)
    train, val = features.subset(train_classes), features.subset(val_classes)
    if len(train.labels) < 2:
        raise ValueError(f"{images_dir}: too few images in training classes ({len(train.labels)})")
    val = val if len(val.labels) >= 2 else None
    before = evaluate(val) if val else {}
    head, history = fit(train, config, val, progress=progress, on_epoch=on_epoch)
    after = evaluate(val, head) if val else {}
    copy_score = _own_score(val or train, head, ("crop_jpeg",), COPY_RECALL)
    subject_score = _own_score(val or train, head, SUBJECT_VIEWS, SUBJECT_RECALL)
    seconds = round(time.perf_counter() - start, 1)
    metrics = {"before": before, "after": after, "seconds": seconds, "images": len(features.labels)}
    save_head(out, head, config.encoder, config.to_dict(), metrics, copy_score, base_path=config.encoder_path,
              subject_score=subject_score)
    return {"checkpoint": str(out), "before": before, "after": after, "history": history, "seconds": seconds,
            "train_classes": len(train_classes), "val_classes": len(val_classes), "copy_score": copy_score,
            "subject_score": subject_score, "skipped": features.skipped}


def train(images_dir: os.PathLike | str, out: os.PathLike | str, config: TrainConfig | None = None,
          cache: os.PathLike | str | None = None, progress: bool = True, on_epoch=None) -> dict:
    """``semcopy train``: a head on a frozen encoder's vectors (:func:`train_head`), or, for an encoder
    with layers of its own between frozen backbones and the vector (``clip-blip-fusion``), those layers
    on images (:func:`train_layers`)."""
    from semcopy_lib.encoders.fusion import NAME as FUSION

    config = config or TrainConfig()
    if config.encoder == FUSION:
        return train_layers(images_dir, out, config, progress=progress, on_epoch=on_epoch)
    return train_head(images_dir, out, config, cache=cache, progress=progress, on_epoch=on_epoch)


def train_layers(images_dir: os.PathLike | str, out: os.PathLike | str, config: TrainConfig,
                 photos: list | None = None, progress: bool = True, on_epoch=None) -> dict:
    """Train the encoder's own layers (:func:`~semcopy_lib.train.images.fit_encoder`) and save its checkpoint
    (``encoder.save``); ``config.encoder_path`` is a checkpoint to continue from. Same report as :func:`train_head`."""
    from semcopy_lib.train.images import fit_encoder

    start = time.perf_counter()
    files = scan_folder(images_dir)
    if not files:
        raise ValueError(f"{images_dir}: no images found")
    encoder = create_encoder(config.encoder, **({"path": config.encoder_path} if config.encoder_path else {}))
    report = fit_encoder(files, encoder, config, default_photos() if photos is None else photos, progress, on_epoch)
    encoder.save(out)
    after = {k: v for k, v in report["history"][-1].items() if k in report["before"]} if report["history"] else {}
    return {"checkpoint": str(out), "before": report["before"], "after": after, "history": report["history"],
            "seconds": round(time.perf_counter() - start, 1), "train_classes": report["train_classes"],
            "val_classes": report["val_classes"], "skipped": report["skipped"]}


def _own_score(cache: FeatureCache, head, kinds: tuple[str, ...], recall: float) -> float:
    """The cosine that a share ``recall`` of the ``kinds`` views reach with their own original."""
    import torch

    with torch.no_grad():
        originals = head(torch.from_numpy(cache.features[:, 0])).numpy()
        own = np.concatenate([(head(torch.from_numpy(cache.features[:, VIEW_KINDS.index(k)])).numpy() * originals).sum(1)
                              for k in kinds])
    return round(float(np.quantile(own, 1 - recall)), 3)
