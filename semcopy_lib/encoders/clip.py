"""CLIP ViT-B/32 image features through transformers' ``CLIPModel``.

Weights come from, in order: ``path=`` (a ``save_pretrained`` folder), ``$SEMCOPY_CLIP_PATH``, the
Hugging Face cache, the hub. With none of these reachable it fails in about a second with a message
that says how to provide weights, instead of retrying the hub for 20 s.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from semcopy_lib.encoders.base import Encoder, EncoderConfig, EncoderUnavailable, pick_device
from semcopy_lib.encoders.registry import register_encoder

NAME = "clip-vit-b32"
REPO = "openai/clip-vit-base-patch32"
PATH_ENV = "SEMCOPY_CLIP_PATH"
# OpenAI CLIP's pixel statistics (the defaults of CLIPImageProcessor).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

HOW_TO = (
    f"give a local copy with --encoder-path DIR or ${PATH_ENV}=DIR (a folder written by "
    f"CLIPModel.save_pretrained, or a snapshot of {REPO}), or run once with network access to fill "
    "the Hugging Face cache"
)


def _cached_snapshot(repo: str) -> str | None:
    """The local cache folder of ``repo`` when its config and weights are there, else None."""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(repo, "config.json")
    if not isinstance(config, str):
        return None
    folder = Path(config).parent
    return str(folder) if any(folder.glob("*.safetensors")) or any(folder.glob("*.bin")) else None


def _hub_reachable(timeout: float = 1.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_source(path: str | None, repo: str, env: str, name: str, how_to: str) -> str:
    """Where to load a Hugging Face model from: ``path`` or ``$env`` (a local folder), the cache, or
    ``repo`` when the hub answers.

    Raises:
        EncoderUnavailable: nothing local and no hub; the message (``name: ...``) says how to provide weights.
    """
    path = path or os.environ.get(env) or None
    if path:
        if not (Path(path) / "config.json").is_file():
            raise EncoderUnavailable(f"{name}: {path} has no config.json; {how_to}")
        return str(path)
    cached = _cached_snapshot(repo)
    if cached:
        return cached
    if _hub_reachable():
        return repo
    raise EncoderUnavailable(f"{name}: weights for {repo} are not on this machine and the hub is unreachable; {how_to}")


def resolve_clip_source(path: str | None, repo: str = REPO) -> str:
    """Where to load CLIP weights from (:func:`resolve_source` with ``$SEMCOPY_CLIP_PATH``)."""
    return resolve_source(path, repo, PATH_ENV, NAME, HOW_TO)


def _availability() -> tuple[bool, str]:
    path = os.environ.get(PATH_ENV)
    if path and (Path(path) / "config.json").is_file():
        return True, f"CLIP ViT-B/32 from {path}"
    if _cached_snapshot(REPO):
        return True, f"CLIP ViT-B/32 ({REPO}, Hugging Face cache)"
    return False, f"CLIP ViT-B/32: weights not found; {HOW_TO}"


class ClipEncoder(Encoder):
    """CLIP image tower + projection; the embedding is ``CLIPModel.get_image_features``."""

    def __init__(self, config: EncoderConfig, model: torch.nn.Module):
        super().__init__(config)
        self.model = model
        self.dim = int(model.config.projection_dim)

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, projection_dim) projected image features."""
        out = self.model.get_image_features(pixel_values=pixels)
        # transformers 5 returns an output object whose pooler_output is the projected vector.
        return out if isinstance(out, torch.Tensor) else out.pooler_output


def preprocessing_of(folder: str | None, default_size: int) -> dict[str, Any]:
    """Image size / mean / std from a checkpoint's preprocessor_config.json, else CLIP's defaults."""
    prep = {"image_size": default_size, "mean": CLIP_MEAN, "std": CLIP_STD}
    if folder and (Path(folder) / "preprocessor_config.json").is_file():
        data = json.loads((Path(folder) / "preprocessor_config.json").read_text())
        crop = data.get("crop_size") or data.get("size") or default_size  # CLIP crops; BLIP resizes to "size"
        prep["image_size"] = int(crop.get("height", crop.get("shortest_edge", default_size)) if isinstance(crop, dict) else crop)
        prep["mean"] = tuple(data.get("image_mean", CLIP_MEAN))
        prep["std"] = tuple(data.get("image_std", CLIP_STD))
    return prep


@register_encoder(NAME, "CLIP ViT-B/32 image features (needs weights)", _availability)
def create_clip_vit_b32(
    path: str | None = None, repo: str = REPO, device: Any = None, **config: Any
) -> ClipEncoder:
    """CLIP image encoder from ``path`` (a local folder) or ``repo``; see the module doc for the order."""
    source = resolve_clip_source(path, repo)  # before importing transformers: fail fast offline
    from transformers import CLIPModel

    local = Path(source).is_dir()
    model = CLIPModel.from_pretrained(source, local_files_only=local)
    prep = preprocessing_of(source if local else None, int(model.config.vision_config.image_size))
    cfg = EncoderConfig(
        name=NAME, path=path, resize="center-crop", options={"repo": repo}, **{**prep, **config}
    )
    return ClipEncoder(cfg, model).to(pick_device(device))
