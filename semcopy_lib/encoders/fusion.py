"""``clip-blip-fusion``: CLIP and BLIP vision tokens fused by cross-attention in both directions.

Each backbone sees the image at its own resolution and normalisation (CLIP ViT-B/32 at 224 px, BLIP
at 384 px: the preprocessed tensor is the image at BLIP's size in [0, 1]; CLIP's input is resized
from it). Both token sequences are projected to a shared width; then, per layer, CLIP tokens attend
to BLIP's patches and BLIP tokens to CLIP's (pre-norm residual cross-attention + feed-forward blocks,
many keys on both sides, so the softmax mixes information), each stream is mean-pooled, the two
pools are concatenated, projected and L2-normalised. The backbones are frozen by default; the fusion
layers train with CombinedLoss (:func:`semcopy_lib.train.images.fit_encoder`, ``semcopy train
--encoder clip-blip-fusion``) and are saved as one small checkpoint that also names the backbones'
folders. Untrained fusion layers are seeded, so an index and its searches agree.

Weights: ``openai/clip-vit-base-patch32`` and ``Salesforce/blip-image-captioning-base`` from
``$SEMCOPY_CLIP_PATH`` / ``$SEMCOPY_BLIP_PATH`` (``save_pretrained`` folders), the Hugging Face
cache, or the hub; ``path=`` is a fusion checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from semcopy_lib.encoders.base import Encoder, EncoderConfig, EncoderUnavailable, pick_device
from semcopy_lib.encoders.clip import PATH_ENV as CLIP_ENV
from semcopy_lib.encoders.clip import REPO as CLIP_REPO
from semcopy_lib.encoders.clip import _cached_snapshot, preprocessing_of, resolve_source
from semcopy_lib.encoders.registry import register_encoder

NAME = "clip-blip-fusion"
BLIP_REPO = "Salesforce/blip-image-captioning-base"
BLIP_ENV = "SEMCOPY_BLIP_PATH"
FORMAT = 1
HOW_TO = (f"give save_pretrained folders with ${CLIP_ENV}=DIR and ${BLIP_ENV}=DIR (snapshots of {CLIP_REPO} "
          f"and {BLIP_REPO}), or run once with network access to fill the Hugging Face cache")


class CrossBlock(nn.Module):
    """Pre-norm residual cross-attention (queries ``x``, keys/values ``y``) and feed-forward."""

    def __init__(self, width: int, heads: int, mlp_ratio: int = 4):
        super().__init__()
        self.norm_q, self.norm_kv, self.norm_ff = nn.LayerNorm(width), nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x: (B, Tx, W) queries, y: (B, Ty, W) keys and values -> (B, Tx, W)."""
        kv = self.norm_kv(y)
        x = x + self.attn(self.norm_q(x), kv, kv, need_weights=False)[0]
        return x + self.ff(self.norm_ff(x))


class FusionHead(nn.Module):
    """(B, Tc, Dc) CLIP tokens and (B, Tb, Db) BLIP tokens -> (B, dim) fused vector (not normalised)."""

    def __init__(self, clip_width: int, blip_width: int, width: int = 256, layers: int = 2, heads: int = 4,
                 dim: int = 512):
        super().__init__()
        self.sizes = {"clip_width": clip_width, "blip_width": blip_width, "width": width, "layers": layers,
                      "heads": heads, "dim": dim}
        self.proj_clip = nn.Sequential(nn.LayerNorm(clip_width), nn.Linear(clip_width, width))
        self.proj_blip = nn.Sequential(nn.LayerNorm(blip_width), nn.Linear(blip_width, width))
        self.clip_to_blip = nn.ModuleList(CrossBlock(width, heads) for _ in range(layers))  # CLIP queries BLIP
        self.blip_to_clip = nn.ModuleList(CrossBlock(width, heads) for _ in range(layers))  # BLIP queries CLIP
        self.out = nn.Sequential(nn.LayerNorm(2 * width), nn.Linear(2 * width, dim))

    def forward(self, clip_tokens: torch.Tensor, blip_tokens: torch.Tensor) -> torch.Tensor:
        c, b = self.proj_clip(clip_tokens), self.proj_blip(blip_tokens)
        for c_block, b_block in zip(self.clip_to_blip, self.blip_to_clip):
            c, b = c_block(c, b), b_block(b, c)  # both directions see the other's tokens of the same layer
        return self.out(torch.cat([c.mean(dim=1), b.mean(dim=1)], dim=-1))


class ClipBlipFusionEncoder(Encoder):
    """Frozen CLIP and BLIP vision towers + a trainable :class:`FusionHead`."""

    def __init__(self, config: EncoderConfig, clip_vision: nn.Module, blip_vision: nn.Module, head: FusionHead,
                 clip_prep: dict[str, Any], blip_prep: dict[str, Any], sources: dict[str, str]):
        super().__init__(config)
        self.clip_vision, self.blip_vision, self.head = clip_vision, blip_vision, head
        self.dim = head.sizes["dim"]
        self.sources = sources
        self.clip_size = int(clip_prep["image_size"])
        for name, prep in (("clip", clip_prep), ("blip", blip_prep)):
            self.register_buffer(f"{name}_mean", torch.tensor(prep["mean"]).view(1, 3, 1, 1), persistent=False)
            self.register_buffer(f"{name}_std", torch.tensor(prep["std"]).view(1, 3, 1, 1), persistent=False)
        self.freeze_backbones(True)

    def freeze_backbones(self, frozen: bool = True) -> None:
        """Backbones frozen (default) train nothing and run without gradients."""
        self.backbones_frozen = frozen
        for module in (self.clip_vision, self.blip_vision):
            module.requires_grad_(not frozen)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) RGB in [0, 1] at BLIP's size -> (B, dim)."""
        clip_px = F.interpolate(pixels, size=(self.clip_size, self.clip_size), mode="bicubic", antialias=True,
                                align_corners=False) if pixels.shape[-1] != self.clip_size else pixels
        return self.fuse((clip_px - self.clip_mean) / self.clip_std, (pixels - self.blip_mean) / self.blip_std)

    def fuse(self, clip_pixels: torch.Tensor, blip_pixels: torch.Tensor) -> torch.Tensor:
        """Each backbone's normalised input -> (B, dim) fused features (unnormalised)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.backbones_frozen):
            clip_tokens = self.clip_vision(pixel_values=clip_pixels).last_hidden_state
            blip_tokens = self.blip_vision(pixel_values=blip_pixels).last_hidden_state
        return self.head(clip_tokens, blip_tokens)

    def save(self, path: os.PathLike | str) -> Path:
        """The fusion layers, their sizes and the backbones' folders, in one file (``torch.save`` of a dict)."""
        state = {k: v.detach().cpu() for k, v in self.head.state_dict().items()}
        torch.save({"format": FORMAT, "kind": NAME, "sizes": self.head.sizes, "state": state,
                    "sources": self.sources}, path)
        return Path(path)


def _load_checkpoint(path: os.PathLike | str) -> dict[str, Any]:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise EncoderUnavailable(f"{path}: not a {NAME} checkpoint ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") != NAME or ckpt.get("format") != FORMAT:
        raise EncoderUnavailable(f"{path}: not a {NAME} checkpoint")
    return ckpt


def _availability() -> tuple[bool, str]:
    have = {repo: bool(os.environ.get(env) and (Path(os.environ[env]) / "config.json").is_file())
            or _cached_snapshot(repo) is not None for repo, env in ((CLIP_REPO, CLIP_ENV), (BLIP_REPO, BLIP_ENV))}
    if all(have.values()):
        return True, "CLIP ViT-B/32 x BLIP base vision tokens, cross-attention fusion"
    missing = ", ".join(r for r, ok in have.items() if not ok)
    return False, f"CLIP x BLIP fusion: weights of {missing} not found; {HOW_TO}"


@register_encoder(NAME, "CLIP x BLIP cross-attention fusion (needs both weights)", _availability)
def create_clip_blip_fusion(path: str | None = None, clip_path: str | None = None, blip_path: str | None = None,
                            width: int = 256, layers: int = 2, heads: int = 4, dim: int = 512, seed: int = 0,
                            device: Any = None, **config: Any) -> ClipBlipFusionEncoder:
    """The fusion encoder; ``path`` is a fusion checkpoint (which names its backbones' folders), else the
    fusion layers are freshly initialised from ``seed`` with the sizes given."""
    ckpt = _load_checkpoint(path) if path else None
    sources = dict(ckpt["sources"]) if ckpt else {}
    clip_src = resolve_source(clip_path or sources.get("clip"), CLIP_REPO, CLIP_ENV, NAME, HOW_TO)
    blip_src = resolve_source(blip_path or sources.get("blip"), BLIP_REPO, BLIP_ENV, NAME, HOW_TO)
    from transformers import BlipForConditionalGeneration, CLIPModel

    clip = CLIPModel.from_pretrained(clip_src, local_files_only=Path(clip_src).is_dir())
    blip = BlipForConditionalGeneration.from_pretrained(blip_src, local_files_only=Path(blip_src).is_dir())
    clip_prep = preprocessing_of(clip_src if Path(clip_src).is_dir() else None, int(clip.config.vision_config.image_size))
    blip_prep = preprocessing_of(blip_src if Path(blip_src).is_dir() else None, int(blip.config.vision_config.image_size))
    sizes = dict(ckpt["sizes"]) if ckpt else {
        "clip_width": int(clip.config.vision_config.hidden_size), "blip_width": int(blip.config.vision_config.hidden_size),
        "width": width, "layers": layers, "heads": heads, "dim": dim}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = FusionHead(**sizes)
    if ckpt:
        head.load_state_dict(ckpt["state"])
    cfg = EncoderConfig(name=NAME, path=path, image_size=int(blip_prep["image_size"]), mean=(0.0, 0.0, 0.0),
                        std=(1.0, 1.0, 1.0), resize="squash",
                        options={"clip": clip_src, "blip": blip_src, "seed": seed, **sizes}, **config)
    encoder = ClipBlipFusionEncoder(cfg, clip.vision_model, blip.vision_model, head, clip_prep, blip_prep,
                                    {"clip": clip_src, "blip": blip_src})
    return encoder.to(pick_device(device)).eval()
