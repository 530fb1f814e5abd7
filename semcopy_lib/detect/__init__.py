"""Key objects with YOLO (ultralytics): ``detect(image) -> [Detection(box, label, confidence)]``.

The Open Images V7 model ``yolov8x-oiv7.pt`` (600 classes) is used when its weights are on this
machine: a path given to :class:`Detector`, ``$SEMCOPY_YOLO_WEIGHTS``, or ultralytics' weights folder.
Nothing is downloaded: ultralytics runs with ``YOLO_OFFLINE=1``, settings sync off and its config
folder inside semcopy's cache. Without weights :func:`load_detector` says so once and returns None,
and callers go on without key objects.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from semcopy_lib.data.boxes import Box
from semcopy_lib.data.trust import check_loadable
from semcopy_lib.data.yolo_files import DEFAULT_WEIGHTS, WEIGHTS_ENV, find_weights, offline_ultralytics

log = logging.getLogger(__name__)
_warned: set[str] = set()


@dataclass(frozen=True)
class Detection:
    """A key object: its box in the image's pixels, its class name and the model's confidence."""

    box: Box
    label: str
    confidence: float


class Detector:
    """A YOLO model, loaded once; :meth:`detect` runs it once per image."""

    def __init__(self, weights: str | os.PathLike, device: Any = None):
        check_loadable(weights, "ultralytics")  # it unpickles a .pt
        offline_ultralytics()
        from ultralytics import YOLO

        self.model = YOLO(str(weights))
        self.device = device if device is not None else ("cuda:0" if _cuda() else "cpu")

    def detect(self, image: Image.Image, confidence: float, max_objects: int) -> list[Detection]:
        """Key objects of an RGB image at ``confidence`` or more, most confident first, at most
        ``max_objects`` (the search takes both from :class:`~semcopy_lib.query.ObjectsConfig`)."""
        result = self.model.predict(image, conf=confidence, verbose=False, device=self.device)[0]
        return to_detections(result.boxes.xyxy.cpu().numpy(), result.boxes.conf.cpu().numpy(),
                             result.boxes.cls.cpu().numpy(), result.names, image.size)[:max_objects]


def to_detections(xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray, names: dict[int, str],
                  size: tuple[int, int]) -> list[Detection]:
    """(N, 4) corner boxes, (N,) confidences and class ids -> :class:`Detection` list, clipped, best first."""
    width, height = size
    out = []
    for (x0, y0, x1, y1), c, k in zip(xyxy, conf, cls):
        x0, y0 = int(max(0, np.floor(x0))), int(max(0, np.floor(y0)))
        x1, y1 = int(min(width, np.ceil(x1))), int(min(height, np.ceil(y1)))
        if x1 > x0 and y1 > y0:
            out.append(Detection((x0, y0, x1 - x0, y1 - y0), str(names.get(int(k), int(k))), float(c)))
    return sorted(out, key=lambda d: -d.confidence)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def load_detector(weights: str | os.PathLike | None = None, **kwargs: Any) -> Detector | None:
    """A :class:`Detector` when weights are found, else None after one warning naming what to provide."""
    path = find_weights(weights)
    if path is None:
        name = str(weights or os.environ.get(WEIGHTS_ENV) or DEFAULT_WEIGHTS)
        if name not in _warned:
            _warned.add(name)
            log.warning("key objects off: YOLO weights %s not found; give a path (or $%s) to %s to turn them on",
                        name, WEIGHTS_ENV, DEFAULT_WEIGHTS)
        return None
    return Detector(path, **kwargs)


__all__ = ["DEFAULT_WEIGHTS", "Detection", "Detector", "find_weights", "load_detector", "to_detections"]
