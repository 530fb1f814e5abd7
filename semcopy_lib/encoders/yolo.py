"""``yolo-oiv7``: embeddings from a YOLO detector's backbone (ultralytics), batched.

The vector is the average-pooled output of the SPPF layer (layer 9 of YOLOv8: the end of the
backbone, stride 32; 640 channels for ``yolov8x``, 256 for ``yolov8n``), taken in the same forward
pass ultralytics uses for ``predict(embed=[9])``. Open Images V7's 600 classes make it an object-centric
view of a picture, useful beside a global encoder (``concat``). Weights: ``yolov8x-oiv7.pt`` found as
:mod:`semcopy_lib.detect` finds it (a path, ``$SEMCOPY_YOLO_WEIGHTS``, ultralytics' weights folder),
never downloaded; a model ``.yaml`` builds random weights (seeded: tests, benchmarks marked random).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from semcopy_lib.data.trust import check_loadable
from semcopy_lib.data.yolo_files import DEFAULT_WEIGHTS, find_weights, offline_ultralytics
from semcopy_lib.encoders.base import Encoder, EncoderConfig, EncoderUnavailable, pick_device
from semcopy_lib.encoders.registry import register_encoder

NAME = "yolo-oiv7"
#: The layer whose pooled output is the embedding (SPPF in YOLOv8 detection models).
EMBED_LAYER = 9


class YoloEncoder(Encoder):
    """A YOLO detection model's backbone, average-pooled at :data:`EMBED_LAYER`."""

    def __init__(self, config: EncoderConfig, net: torch.nn.Module, random_weights: bool):
        super().__init__(config)
        self.net = net
        self.random_weights = random_weights
        with torch.no_grad():
            self.dim = int(self.features(torch.zeros(1, 3, 64, 64)).shape[-1])

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) RGB in [0, 1], S a multiple of 32 -> (B, C) pooled SPPF features."""
        return torch.stack(self.net._predict_once(pixels, embed=[EMBED_LAYER]))


def _availability() -> tuple[bool, str]:
    path = find_weights(None)
    if path is None:
        return False, f"YOLO embeddings: {DEFAULT_WEIGHTS} not found (a path with --encoder-path, or $SEMCOPY_YOLO_WEIGHTS)"
    return True, f"YOLO embeddings from {path.name} (SPPF layer, pooled)"


@register_encoder(NAME, "YOLO (Open Images V7) backbone embeddings (needs weights)", _availability)
def create_yolo_oiv7(path: str | None = None, device: Any = None, image_size: int = 320, seed: int = 0,
                     **config: Any) -> YoloEncoder:
    """YOLO embeddings; ``path`` is a ``.pt`` checkpoint or a model ``.yaml`` (random weights from ``seed``)."""
    weights = find_weights(path)
    if weights is None:
        raise EncoderUnavailable(f"{NAME}: {path or DEFAULT_WEIGHTS} not found; give the weights with "
                                 "--encoder-path or $SEMCOPY_YOLO_WEIGHTS (nothing is downloaded)")
    check_loadable(weights, "ultralytics")  # it unpickles a .pt and evaluates parts of a .yaml
    offline_ultralytics()
    from ultralytics import YOLO

    random_weights = Path(str(weights)).suffix in (".yaml", ".yml")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            net = YOLO(str(weights)).model
        except (TypeError, RuntimeError, ValueError, KeyError, OSError, ModuleNotFoundError) as exc:
            raise EncoderUnavailable(f"{NAME}: {weights}: not a loadable YOLO model ({' '.join(str(exc).split())[:200]})") from exc
    net = net.float().eval()
    for p in net.parameters():
        p.requires_grad_(False)  # a frozen backbone: heads train on its vectors
    cfg = EncoderConfig(name=NAME, path=str(path) if path else None, image_size=image_size, mean=(0.0, 0.0, 0.0),
                        std=(1.0, 1.0, 1.0), resize="squash", options={"layer": EMBED_LAYER, "random": random_weights},
                        **config)
    return YoloEncoder(cfg, net, random_weights).to(pick_device(device)).eval()
