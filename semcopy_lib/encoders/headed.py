"""An encoder with a trained projection head: a frozen backbone's embedding through a :class:`ResidualHead`.

A head checkpoint is one small file (``torch.save`` of a dict): the backbone's registry name and
weights path (None: the backbone's own default), the head's sizes and weights, the training config,
the metrics it reached, and the cosine score from which a hit is a copy. ``effnet-lite0-semcopy`` is
the head trained on the allowed data (``semcopy train``), shipped in ``semcopy_lib/weights``, and the
default encoder; a head trained on any backbone (``semcopy train --encoder clip-vit-b32
--encoder-path CLIP_DIR``) loads with ``create_encoder("semcopy-head", path="head.pt")``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from semcopy_lib.encoders.base import Cells, Encoder, EncoderConfig, EncoderUnavailable, FeatureMaps
from semcopy_lib.encoders.registry import create_encoder, register_encoder

NAME = "effnet-lite0-semcopy"
#: Any head checkpoint, on whichever backbone it was trained (``path`` is required).
ANY_HEAD = "semcopy-head"
BUNDLED = Path(__file__).resolve().parent.parent / "weights" / f"{NAME}.pt"
FORMAT = 1


class ResidualHead(nn.Module):
    """x -> normalize(x + W2 gelu(W1 x)); W2 starts at zero, so an untrained head is the backbone itself.

    Starting from the identity means training can only move the embedding where the loss asks,
    keeping what the backbone already does well (exact and cropped copies).

    Args:
        dim: embedding size in and out (D).
        hidden: width of the hidden layer.
    """

    def __init__(self, dim: int, hidden: int = 512):
        super().__init__()
        self.dim, self.hidden = dim, hidden
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D) embeddings -> (B, D) L2-normalised embeddings."""
        x = F.normalize(x.float(), dim=-1)
        return F.normalize(x + self.fc2(F.gelu(self.fc1(x))), dim=-1)


def save_head(path: Path | str, head, base: str, train: dict, metrics: dict, copy_score: float | None,
              base_path: str | None = None, subject_score: float | None = None) -> Path:
    """Write a head checkpoint (weights in float16: a 1280-512-1280 head is 2.6 MB).

    ``base_path``: where the backbone's weights are (None: the backbone's default, e.g. bundled).
    ``copy_score`` / ``subject_score``: see :class:`~semcopy_lib.encoders.base.Encoder`.
    """
    state = {k: v.detach().to(torch.float16) for k, v in head.state_dict().items()}
    torch.save({"format": FORMAT, "base": base, "base_path": base_path, "dim": head.dim, "hidden": head.hidden,
                "state": state, "train": train, "metrics": metrics, "copy_score": copy_score,
                "subject_score": subject_score}, path)
    return Path(path)


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise EncoderUnavailable(f"{NAME}: no head checkpoint at {path} (train one with `semcopy train`)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise EncoderUnavailable(f"{path}: not a semcopy head checkpoint ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise EncoderUnavailable(f"{path}: not a semcopy head checkpoint (format {FORMAT} expected)")
    return ckpt


class HeadEncoder(Encoder):
    """``head(backbone(image))``: the backbone's preprocessing, views and windows, the head's geometry."""

    def __init__(self, config: EncoderConfig, base: Encoder, head, copy_score: float | None,
                 subject_score: float | None = None):
        super().__init__(config)
        self.base, self.head = base, head
        self.dim, self.cpu_batch, self.copy_score = base.dim, base.cpu_batch, copy_score
        self.subject_score = subject_score
        self.memory_format = base.memory_format

    def preprocess(self, img: Image.Image, size: int | None = None) -> torch.Tensor:
        return self.base.preprocess(img, size)

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, D) head outputs (unit rows): the trainable path."""
        return self.head(self.base(pixels))

    @torch.inference_mode()
    def _through_head(self, vectors: np.ndarray) -> np.ndarray:
        """(..., D) backbone unit vectors -> (..., D) head outputs."""
        flat = torch.from_numpy(np.ascontiguousarray(vectors.reshape(-1, vectors.shape[-1]))).to(self.device)
        return self.head(flat).float().cpu().numpy().reshape(vectors.shape)

    def use_runtime(self, runtime: str) -> str:
        return self.base.use_runtime(runtime)

    def precision(self) -> str:
        return self.base.precision()

    def prepare(self, shapes=()) -> None:
        self.base.prepare(shapes)

    def embed(self, images, batch_size: int = 32, progress: bool = False, size: int | None = None) -> np.ndarray:
        """The backbone embeds (its own batching and preprocessing, whatever it is), then the head."""
        return self._through_head(self.base.embed(images, batch_size, progress, size))

    def gallery_pixels(self, image: Image.Image) -> list[torch.Tensor] | None:
        return self.base.gallery_pixels(image)

    def embed_gallery(self, images, batch_size: int = 32, pixels=None) -> list[np.ndarray]:
        views = self.base.embed_gallery(images, batch_size, pixels)
        if not views:
            return []
        headed = self._through_head(np.concatenate(views))  # one pass for all images' views
        return np.split(headed, np.cumsum([len(v) for v in views])[:-1])

    def feature_maps(self, image: Image.Image, size: int) -> FeatureMaps | None:
        return self.base.feature_maps(image, size)

    def pool_cells(self, maps: FeatureMaps, cells: Sequence[Cells]) -> np.ndarray:
        return self._through_head(self.base.pool_cells(maps, cells))


def _availability() -> tuple[bool, str]:
    if not BUNDLED.is_file():
        return False, f"no trained head at {BUNDLED} (semcopy train)"
    return True, "EfficientNet-Lite0 + projection head trained for semantic copies (bundled)"


def _load_head(name: str, path: str | Path, device: Any, config: dict[str, Any], given: bool) -> HeadEncoder:
    ckpt = load_checkpoint(path)
    base_path = ckpt.get("base_path")
    base = create_encoder(ckpt["base"], device=device, **({"path": base_path} if base_path else {}))
    if base.dim != ckpt["dim"]:
        raise EncoderUnavailable(f"{path}: head for {ckpt['dim']}-d vectors, but {ckpt['base']} gives {base.dim}-d")
    head = ResidualHead(ckpt["dim"], ckpt["hidden"])
    head.load_state_dict({k: v.float() for k, v in ckpt["state"].items()})
    fields = {k: v for k, v in base.config.to_dict().items() if k not in ("name", "path", "options")}
    cfg = EncoderConfig.from_dict({**fields, "name": name, "path": str(path) if given else None,
                                   "options": {"base": ckpt["base"], "base_path": base_path}, **config})
    return HeadEncoder(cfg, base, head.eval(), ckpt.get("copy_score"), ckpt.get("subject_score")).to(base.device).eval()


@register_encoder(NAME, "EfficientNet-Lite0 + trained projection head", _availability)
def create_effnet_head(path: str | None = None, device: Any = None, **config: Any) -> HeadEncoder:
    """The bundled head on its backbone; ``path`` loads another head checkpoint."""
    return _load_head(NAME, path or BUNDLED, device, config, given=path is not None)


def _any_head_availability() -> tuple[bool, str]:
    return False, "needs a head checkpoint from `semcopy train` on any backbone: --encoder-path HEAD.pt"


@register_encoder(ANY_HEAD, "a trained projection head on its backbone", _any_head_availability)
def create_any_head(path: str | None = None, device: Any = None, **config: Any) -> HeadEncoder:
    """The head checkpoint at ``path`` on the backbone it names (CLIP included, with its weights path)."""
    if not path:
        raise EncoderUnavailable(f"{ANY_HEAD}: give the head checkpoint (--encoder-path HEAD.pt)")
    return _load_head(ANY_HEAD, path, device, config, given=True)
