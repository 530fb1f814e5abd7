"""Where a clip-art subject is pasted on a photo: a small convolutional probe on EfficientNet-Lite0's
mid-level features (:data:`PROBE_BLOCKS`), read from the same pass as the feature-map windows.

Clip art differs from a photograph in low-level statistics (flat fields, clean outlines, no grain)
that the network's early blocks see at a finer scale than its last layer. The probe takes block 4
(40 channels, stride 8, pooled to stride 16) and block 10 (112 channels, stride 16), a 24 x 24 map
at 384 px, and gives each cell the probability that a pasted subject covers it; the connected part
of cells over a threshold with the most probability gives the subject's box (:func:`cascade_boxes`,
at the query config's ``pasted.thresholds``).

Trained by ``semcopy_lib.train.pasted_probe`` on pastes of allowed clip arts (none in the benchmark
galleries) on the training photos, generated pictures and pages, and silhouettes of other clip arts;
its figures are in docs/benchmarks.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from semcopy_lib.data.boxes import Box
from semcopy_lib.segment.layout import iou

#: EfficientNet-Lite0 blocks whose outputs the probe reads.
PROBE_BLOCKS = (4, 10)
#: The maps the probe was trained on (``FeatureMaps.backbone`` of EfficientNet-Lite0's ImageNet weights).
BACKBONE = "efficientnet-lite0/imagenet"
#: Input channels: block 4 (40) + block 10 (112).
CHANNELS = 152
BUNDLED = Path(__file__).resolve().parents[1] / "weights" / "pasted-probe.pt"


class PastedProbe(torch.nn.Module):
    """(B, 152, H, W) block features -> (B, H, W) probability that a pasted subject covers each cell."""

    def __init__(self, channels: int = CHANNELS, width: int = 48):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(channels, width, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(width, width, 3, padding=2, dilation=2), torch.nn.ReLU(),
            torch.nn.Conv2d(width, 1, 3, padding=1),
        )
        self.register_buffer("mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("std", torch.ones(1, channels, 1, 1))

    def logits(self, feats: torch.Tensor) -> torch.Tensor:
        return self.net((feats - self.mean) / self.std)[:, 0]

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(feats))


def probe_features(outputs: dict[int, torch.Tensor]) -> torch.Tensor:
    """The probe's input from the outputs of :data:`PROBE_BLOCKS`, (B, C, H, W) or one image's
    (C, H, W): (B, 152, H/16, W/16) float (one image: B = 1)."""
    outputs = {i: o[None] if o.dim() == 3 else o for i, o in outputs.items()}
    low, mid = outputs[PROBE_BLOCKS[0]].float(), outputs[PROBE_BLOCKS[1]].float()
    return torch.cat([F.avg_pool2d(low, 2), mid], dim=1)


def boxes_from_map(prob: np.ndarray, size: tuple[int, int], threshold: float, top: int = 1) -> list[Box]:
    """Boxes (x, y, w, h) in an image of ``size`` (w, h) around the connected parts of ``prob`` (H, W)
    over ``threshold``, the part with the most probability first; at most ``top``."""
    from scipy import ndimage

    labels, count = ndimage.label(prob > threshold)
    if count == 0:
        return []
    mass = ndimage.sum(prob, labels, range(1, count + 1))
    sx, sy = size[0] / prob.shape[1], size[1] / prob.shape[0]
    boxes = []
    for part in np.argsort(-np.asarray(mass))[:top] + 1:
        ys, xs = np.nonzero(labels == part)
        x0, y0 = round(xs.min() * sx), round(ys.min() * sy)
        boxes.append((x0, y0, max(1, round((xs.max() + 1) * sx) - x0), max(1, round((ys.max() + 1) * sy) - y0)))
    return boxes


def cascade_boxes(prob: np.ndarray, size: tuple[int, int], thresholds: tuple[float, ...], alike: float) -> list[Box]:
    """The heaviest part's box of ``prob`` (H, W) at each of ``thresholds``, in an image of ``size``
    (w, h), loosest first, each box once (boxes at IoU >= ``alike`` to an earlier one dropped)."""
    boxes: list[Box] = []
    for threshold in thresholds:
        for box in boxes_from_map(prob, size, threshold):
            if all(iou(box, kept) < alike for kept in boxes):
                boxes.append(box)
    return boxes


def load_probe(path: Path | str = BUNDLED) -> PastedProbe | None:
    """The trained probe (``torch.load(weights_only=True)``), or None when there is no file."""
    path = Path(path)
    if not path.is_file():
        return None
    probe = PastedProbe()
    probe.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return probe.eval()
