"""The gallery index: one interface (add / remove / search / save / load), backends chosen by name."""

from semcopy_lib.index.backends import BACKENDS, FaissBackend, VectorBackend
from semcopy_lib.index.compressed import CompressedBackend  # registers the "compressed" backend
from semcopy_lib.index.directory import (
    AddReport,
    EncoderMismatch,
    GalleryIndex,
    Hit,
    IndexDirError,
)
from semcopy_lib.index.lock import IndexLocked
from semcopy_lib.index.store import Box, NewItem, Record

__all__ = [
    "BACKENDS",
    "CompressedBackend",
    "AddReport",
    "Box",
    "EncoderMismatch",
    "FaissBackend",
    "GalleryIndex",
    "Hit",
    "IndexDirError",
    "IndexLocked",
    "NewItem",
    "Record",
    "VectorBackend",
]
