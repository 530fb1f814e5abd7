"""The HTTP API (FastAPI): ``semcopy api --index DIR`` serves one search service to other programs."""

from semcopy_lib.api.server import create_app

__all__ = ["create_app"]
