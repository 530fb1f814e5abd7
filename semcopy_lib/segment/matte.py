"""Which pixels of a box are the subject pasted there: a small U-Net trained on clip art pasted on photos.

GrabCut separates a subject from its surroundings by colour alone, so a drawing on a photo of the same
colours, or with a shadow, loses parts or keeps the photo. Clip art differs from a photograph in what a
few convolutions see (flat fields, clean outlines, no grain); a network trained on pastes of the
training classes' clip art on the training photos (:mod:`semcopy_lib.train.matte`) tells them apart
also where their colours agree.

Input: the box with a margin of the picture around it (as GrabCut's), resized to :data:`SIDE` square,
and a fourth channel that is 1 inside the box; output: each pixel's probability of being the subject.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from semcopy_lib.data.boxes import Box

#: The input's side: the crop and its margin are resized to SIDE x SIDE.
SIDE = 64
BUNDLED = Path(__file__).resolve().parents[1] / "weights" / "subject-matte.pt"


def _block(cin: int, cout: int, dilation: int = 1) -> torch.nn.Sequential:
    return torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation, bias=False),
                               torch.nn.BatchNorm2d(cout), torch.nn.ReLU(inplace=True))


class SubjectMatte(torch.nn.Module):
    """(B, 4, S, S) crop RGB and box channel in [0, 1] -> (B, S, S) logits that a pixel is the subject.

    A U-Net of four scales; the last, at S/8, is dilated twice so that a cell sees the whole crop (the
    margin's photo is what the subject is told apart from)."""

    def __init__(self, widths: tuple[int, int, int, int] = (16, 32, 48, 64)):
        super().__init__()
        a, b, c, d = widths
        self.e1 = torch.nn.Sequential(_block(4, a), _block(a, a))
        self.e2 = torch.nn.Sequential(_block(a, b), _block(b, b))
        self.e3 = torch.nn.Sequential(_block(b, c), _block(c, c))
        self.e4 = torch.nn.Sequential(_block(c, d), _block(d, d, 2), _block(d, d, 4))
        self.d3 = _block(d + c, c)
        self.d2 = _block(c + b, b)
        self.d1 = _block(b + a, a)
        self.out = torch.nn.Conv2d(a, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x - 0.5
        e1 = self.e1(x)
        e2 = self.e2(F.max_pool2d(e1, 2))
        e3 = self.e3(F.max_pool2d(e2, 2))
        e4 = self.e4(F.max_pool2d(e3, 2))
        y = self.d3(torch.cat([_up(e4, e3), e3], 1))
        y = self.d2(torch.cat([_up(y, e2), e2], 1))
        y = self.d1(torch.cat([_up(y, e1), e1], 1))
        return self.out(y)[:, 0]


def _up(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(t, size=like.shape[-2:], mode="bilinear", align_corners=False)


def around(size: tuple[int, int], box: Box, margin: float) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): ``box`` (x, y, w, h) grown by ``margin`` of its size on each side (and a pixel),
    within a picture of ``size`` (w, h)."""
    x, y, w, h = box
    mx, my = int(w * margin) + 1, int(h * margin) + 1
    return max(0, x - mx), max(0, y - my), min(size[0], x + w + mx), min(size[1], y + h + my)


def matte_input(image: Image.Image, box: Box, margin: float, side: int = SIDE) -> np.ndarray:
    """(side, side, 4) uint8: the box of ``image`` and its margin (:func:`around`) resized, and 255 inside
    the box."""
    x, y, w, h = box
    x0, y0, x1, y1 = around(image.size, box, margin)
    rgb = np.asarray(image.crop((x0, y0, x1, y1)).convert("RGB").resize((side, side), Image.BILINEAR))
    sx, sy = side / (x1 - x0), side / (y1 - y0)
    inside = np.zeros((side, side, 1), np.uint8)
    inside[round((y - y0) * sy):round((y + h - y0) * sy), round((x - x0) * sx):round((x + w - x0) * sx)] = 255
    return np.concatenate([rgb, inside], -1)


@lru_cache(maxsize=4)
def load_matte(path: Path | str = BUNDLED) -> SubjectMatte | None:
    """The trained network (``torch.load(weights_only=True)``) in eval mode, or None when there is no file."""
    path = Path(path)
    if not path.is_file():
        return None
    net = SubjectMatte()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.eval()


def subject_probabilities(net: SubjectMatte, jobs: list[tuple[Image.Image, Box]], margin: float,
                          batch_size: int = 64) -> list[np.ndarray]:
    """For each (image, box): (h, w) float32, each pixel of the box's probability of being the subject."""
    out = []
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start:start + batch_size]
        x = torch.from_numpy(np.stack([matte_input(im, box, margin) for im, box in chunk])).permute(0, 3, 1, 2)
        with torch.inference_mode():
            probs = torch.sigmoid(net(x.float() / 255)).numpy()
        for (image, box), p in zip(chunk, probs):
            x0, y0, x1, y1 = around(image.size, box, margin)
            bx, by, bw, bh = box
            full = np.asarray(Image.fromarray(p).resize((x1 - x0, y1 - y0), Image.BILINEAR))
            out.append(full[by - y0:by - y0 + bh, bx - x0:bx - x0 + bw])
    return out
