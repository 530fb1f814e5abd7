"""Which weights files semcopy may hand to a loader that can run code (a pickle, a model ``.yaml`` with
expressions: ultralytics).

An index folder is untrusted: its manifest may name any path. While an index's encoder is rebuilt
(:func:`from_manifest`), such a file loads only when the user named it: in the trust list that
``semcopy trust FILE`` and ``semcopy index build --encoder-path FILE`` keep (path and sha256, so a file
changed since does not load), in ``$SEMCOPY_TRUSTED_WEIGHTS`` (files or folders, ``os.pathsep``
between them), or it is a model config shipped inside ultralytics itself. Paths given directly
(``create_encoder(..., path=...)``, ``--detector``) are the user's own choice and load as given.
Loaders that cannot run code (``torch.load(weights_only=True)``, safetensors, ONNX) need no trust.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Iterator

TRUSTED_ENV = "SEMCOPY_TRUSTED_WEIGHTS"
TRUST_FILE_ENV = "SEMCOPY_TRUST_FILE"

_SOURCE: ContextVar[str | None] = ContextVar("semcopy_weights_source", default=None)


class UntrustedWeights(RuntimeError):
    """A manifest asks for a file that would be unpickled (or evaluated) and the user never named it."""


def trust_file() -> Path:
    """The trust list: ``$SEMCOPY_TRUST_FILE``, default ``~/.config/semcopy/trusted-weights.json``
    (outside every index folder, so an index cannot add itself to it)."""
    if os.environ.get(TRUST_FILE_ENV):
        return Path(os.environ[TRUST_FILE_ENV])
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "semcopy" / "trusted-weights.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_list() -> dict[str, str]:
    try:
        data = json.loads(trust_file().read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def trust(path: os.PathLike | str) -> Path:
    """Add a file to the trust list with its current sha256; returns its resolved path.

    Raises:
        FileNotFoundError: ``path`` is not a file.
    """
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise FileNotFoundError(f"{path}: no such file to trust")
    entries = _read_list()
    entries[str(resolved)] = _sha256(resolved)
    out = trust_file()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(entries, indent=1, sort_keys=True))
    os.replace(tmp, out)
    return resolved


def _shipped_config(path: Path) -> bool:
    """A bare model-config name (``yolov8n.yaml``) that is no file here: ultralytics builds it from
    the configs inside its own package."""
    return path.suffix in (".yaml", ".yml") and path.parent == Path(".") and not path.exists()


def trusted(path: os.PathLike | str) -> bool:
    """Whether ``path`` may be loaded by code that can run code (see the module's docstring)."""
    path = Path(path)
    if _shipped_config(path):
        return True
    resolved = path.expanduser().resolve()
    for entry in filter(None, os.environ.get(TRUSTED_ENV, "").split(os.pathsep)):
        allowed = Path(entry).expanduser().resolve()
        if resolved == allowed or allowed in resolved.parents:
            return True
    recorded = _read_list().get(str(resolved))
    return recorded is not None and resolved.is_file() and recorded == _sha256(resolved)


@contextlib.contextmanager
def from_manifest(source: os.PathLike | str) -> Iterator[None]:
    """Within: weights paths come from ``source`` (an index manifest, a file the user did not write),
    so :func:`check_loadable` asks for trust."""
    token = _SOURCE.set(str(source))
    try:
        yield
    finally:
        _SOURCE.reset(token)


def check_loadable(path: os.PathLike | str, loader: str) -> None:
    """Raise before ``loader`` (which can run code from the file) opens ``path`` named by a manifest
    the user did not name it in.

    Raises:
        UntrustedWeights: one line saying what would load and how to allow it.
    """
    source = _SOURCE.get()
    if source is None or trusted(path):
        return
    raise UntrustedWeights(
        f"{source}: this index asks {loader} to load {path}, which can run code, and you have not named that "
        f"file; nothing was loaded. If you trust it: semcopy trust {path} (or add it to ${TRUSTED_ENV})")
