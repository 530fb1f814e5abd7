"""The encoder registry: ``create_encoder(name, **overrides)`` and ``list_encoders()`` (after timm)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from semcopy_lib.encoders.base import Encoder, EncoderUnavailable

#: The encoder used when none is named: EfficientNet-Lite0 with the bundled head trained for semantic
#: copies (it finds drawings of unseen classes better than the bare backbone; docs/benchmarks.md).
DEFAULT_ENCODER = "effnet-lite0-semcopy"


@dataclass(frozen=True)
class EncoderInfo:
    """What ``semcopy encoders`` shows: a name, whether it can run here, and a note on its weights."""

    name: str
    available: bool
    note: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "available": self.available, "note": self.note}


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., Encoder]
    note: str
    availability: Callable[[], tuple[bool, str]]


_REGISTRY: dict[str, _Entry] = {}


def register_encoder(
    name: str, note: str, availability: Callable[[], tuple[bool, str]] | None = None
) -> Callable[[Callable[..., Encoder]], Callable[..., Encoder]]:
    """Decorator: register ``factory(**overrides) -> Encoder`` under ``name``.

    ``availability()`` returns ``(available, note)`` cheaply, without loading weights.
    """

    def wrap(factory: Callable[..., Encoder]) -> Callable[..., Encoder]:
        if name in _REGISTRY:
            raise ValueError(f"encoder {name!r} is registered twice")
        _REGISTRY[name] = _Entry(factory, note, availability or (lambda: (True, note)))
        return factory

    return wrap


def encoder_names() -> list[str]:
    return sorted(_REGISTRY)


def create_encoder(name: str = DEFAULT_ENCODER, **overrides: Any) -> Encoder:
    """Build the encoder ``name`` in eval mode on its device.

    Args:
        name: a registered name (see :func:`list_encoders`).
        **overrides: encoder settings, e.g. ``path=`` a local weights folder, ``device="cpu"``.

    Raises:
        KeyError: unknown name (the message lists the known ones).
        EncoderUnavailable: the encoder cannot run here; the message says how to provide weights.
    """
    if name not in _REGISTRY:
        raise KeyError(f"unknown encoder {name!r}; known: {', '.join(encoder_names())}")
    encoder = _REGISTRY[name].factory(**{k: v for k, v in overrides.items() if v is not None})
    return encoder.eval()


def encoder_info(name: str) -> EncoderInfo:
    """Whether the encoder ``name`` can run here, and a note (checked without loading weights)."""
    try:
        available, note = _REGISTRY[name].availability()
    except EncoderUnavailable as exc:
        available, note = False, str(exc)
    return EncoderInfo(name, available, note)


def list_encoders() -> list[EncoderInfo]:
    """Every registered encoder, with whether it can run here (checked without loading weights)."""
    return [encoder_info(name) for name in encoder_names()]
