"""The widget-free application layer shared by the CLI, notebooks and dashboard.

Names are imported on first use (PEP 562), so that ``semcopy_lib.app.results`` or ``.remote`` can be
used without loading torch (a dashboard kernel that talks to a shared search server never does).
"""

from __future__ import annotations

import importlib

_WHERE = {
    "IndexReport": "indexing",
    "add_paths": "indexing",
    "build_index": "indexing",
    "encoder_for_index": "indexing",
    "index_files": "indexing",
    "QueryResult": "results",
    "SearchHit": "results",
    "SearchService": "service",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'semcopy_lib.app' has no attribute {name!r}")
    return getattr(importlib.import_module(f"semcopy_lib.app.{_WHERE[name]}"), name)
