"""Small random checkpoints written like real ones (``save_pretrained``), for encoders whose weights
are not on this machine: tests and benchmark rows run them through the real loading code.
Rows measured with them are marked random: their numbers only show that the plumbing works."""

from __future__ import annotations

import os
from pathlib import Path


def tiny_clip(folder: os.PathLike | str, seed: int = 0) -> Path:
    """A random CLIPModel with a 32-px, 2-layer vision tower (hidden 32, projection 16)."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    cfg = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                         vocab_size=99, max_position_embeddings=20, bos_token_id=0, eos_token_id=1, pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
        projection_dim=16,
    )
    torch.manual_seed(seed)
    CLIPModel(cfg).save_pretrained(folder)
    return Path(folder)


def tiny_blip(folder: os.PathLike | str, seed: int = 0) -> Path:
    """A random BlipForConditionalGeneration with a 48-px, 2-layer vision tower (hidden 24).

    Its weights are drawn with std 0.02: BLIP's default ``initializer_range`` (1e-10) gives a vision
    tower whose output does not depend on the image.
    """
    import torch
    from transformers import BlipConfig, BlipForConditionalGeneration

    cfg = BlipConfig(
        text_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                         vocab_size=99, max_position_embeddings=20, encoder_hidden_size=24),
        vision_config=dict(hidden_size=24, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                           image_size=48, patch_size=8, initializer_range=0.02),
        projection_dim=16,
    )
    torch.manual_seed(seed)
    BlipForConditionalGeneration(cfg).save_pretrained(folder)
    return Path(folder)
