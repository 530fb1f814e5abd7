"""The widget-free application layer shared by the CLI, notebooks and dashboard."""

from semcopy_lib.app.indexing import IndexReport, add_paths, build_index, encoder_for_index, index_files
from semcopy_lib.app.results import QueryResult, SearchHit
from semcopy_lib.app.service import SearchService

__all__ = [
    "IndexReport",
    "QueryResult",
    "SearchHit",
    "SearchService",
    "add_paths",
    "build_index",
    "encoder_for_index",
    "index_files",
]
