"""Encoders: image -> L2-normalised vector, behind a registry.

>>> from semcopy_lib.encoders import create_encoder, list_encoders
>>> enc = create_encoder("effnet-lite0")
>>> vectors = enc.embed([img])          # (1, 1280) float32, unit rows
"""

from semcopy_lib.encoders.base import Encoder, EncoderConfig, EncoderUnavailable, FeatureMaps, pick_device
from semcopy_lib.encoders.registry import (
    DEFAULT_ENCODER,
    EncoderInfo,
    create_encoder,
    encoder_names,
    list_encoders,
    register_encoder,
)

# Importing the modules registers their encoders.
from semcopy_lib.encoders import clip as _clip  # noqa: F401,E402
from semcopy_lib.encoders import effnet as _effnet  # noqa: F401,E402
from semcopy_lib.encoders import headed as _headed  # noqa: F401,E402
from semcopy_lib.encoders import fusion as _fusion  # noqa: F401,E402
from semcopy_lib.encoders import yolo as _yolo  # noqa: F401,E402
from semcopy_lib.encoders import concat as _concat  # noqa: F401,E402

__all__ = [
    "DEFAULT_ENCODER",
    "Encoder",
    "EncoderConfig",
    "EncoderInfo",
    "EncoderUnavailable",
    "FeatureMaps",
    "create_encoder",
    "encoder_names",
    "list_encoders",
    "pick_device",
    "register_encoder",
]
