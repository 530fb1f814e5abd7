"""``concat``: several encoders as one vector, each part L2-normalised and weighted.

The vector is ``[sqrt(w_1) e_1, ..., sqrt(w_n) e_n] / sqrt(sum w)`` with every ``e_i`` a unit vector,
so the cosine of two vectors is the weighted mean of the parts' cosines: no part dominates because
its raw features are larger. Parts and weights are the
config (``parts="effnet-lite0,yolo-oiv7"``, ``weights="1,0.5"``; ``paths`` for parts that need one).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from PIL import Image

from semcopy_lib.encoders.base import Encoder, EncoderConfig, EncoderUnavailable
from semcopy_lib.encoders.registry import create_encoder, register_encoder

NAME = "concat"
#: Parts when none are named: the bundled default with YOLO's object view.
DEFAULT_PARTS = ("effnet-lite0-semcopy", "yolo-oiv7")


class ConcatEncoder(Encoder):
    """Each part preprocesses and embeds its own way; the parts' unit vectors are weighted and joined."""

    def __init__(self, config: EncoderConfig, parts: Sequence[Encoder], weights: Sequence[float]):
        super().__init__(config)
        if len(parts) != len(weights) or not parts or min(weights) <= 0:
            raise EncoderUnavailable(f"{NAME}: one positive weight per part needed (parts {len(parts)}, weights {list(weights)})")
        self.parts = torch.nn.ModuleList(parts)
        total = sum(weights)
        self.scales = [math.sqrt(w / total) for w in weights]
        self.dim = sum(p.dim for p in parts)

    def preprocess(self, img: Image.Image, size: int | None = None) -> torch.Tensor:
        raise NotImplementedError(f"{NAME} embeds images through each part's own preprocessing (use embed)")

    def use_runtime(self, runtime: str) -> str:
        used = {p.use_runtime(runtime) for p in self.parts}
        return used.pop() if len(used) == 1 else "torch"

    @torch.inference_mode()
    def embed(self, images, batch_size: int = 32, progress: bool = False, size: int | None = None):
        import numpy as np

        return np.concatenate([s * p.embed(images, batch_size, progress) for s, p in zip(self.scales, self.parts)], axis=1)

    def gallery_pixels(self, image: Image.Image) -> None:
        return None  # each part preprocesses its own way

    def embed_gallery(self, images, batch_size: int = 32, pixels=None):
        return list(self.embed(images, batch_size)[:, None])


def _parse(value: Any, cast=str) -> list:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [cast(v.strip() if isinstance(v, str) else v) for v in items if str(v).strip()]


def _availability() -> tuple[bool, str]:
    from semcopy_lib.encoders.registry import encoder_info

    missing = [n for n in DEFAULT_PARTS if not encoder_info(n).available]
    note = f"parts and weights in config (default {' + '.join(DEFAULT_PARTS)})"
    return (not missing, note if not missing else f"{note}; not here: {', '.join(missing)} (name other parts)")


@register_encoder(NAME, "several encoders joined, each part normalised and weighted", _availability)
def create_concat(parts: Any = None, weights: Any = None, paths: Any = None, path: str | None = None,
                  device: Any = None, **config: Any) -> ConcatEncoder:
    """``parts``: encoder names (list or comma-separated); ``weights``: one per part (default 1 each);
    ``paths``: one weights path per part ('' for none). ``path`` may carry all three as
    ``"parts|weights|paths"`` (what an index's manifest keeps, so searches rebuild the same encoder)."""
    if path and not parts:
        spec = path.split("|") + ["", ""]
        parts, weights, paths = spec[0], spec[1] or None, spec[2] or None
    names = _parse(parts) or list(DEFAULT_PARTS)
    w = _parse(weights, float) or [1.0] * len(names)
    where = (paths.split(",") if isinstance(paths, str) else list(paths or [])) or [""] * len(names)
    encoders = [create_encoder(n, device=device, **({"path": p} if p else {})) for n, p in zip(names, where)]
    cfg = EncoderConfig(name=NAME, path="|".join([",".join(names), ",".join(str(x) for x in w), ",".join(where)]),
                        options={"parts": names, "weights": w, "paths": where}, **config)
    return ConcatEncoder(cfg, encoders, w).to(encoders[0].device)
