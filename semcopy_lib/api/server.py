"""``semcopy api``: search, gallery images, index changes and duplicates over HTTP (FastAPI).

One model and index per process; the service takes one request at a time (a lock: torch already uses
every core for one search), so concurrent clients are safe and writes never interleave. OpenAPI docs
at ``/docs``. Errors are ``{"error": "one line"}`` with 401 (no or wrong token), 404, 413 (upload
over ``SEMCOPY_MAX_UPLOAD_MB``), 422 (not an image, bad class name, ``k`` or ``threshold``, a missing
or mistyped field).

Tokens: write endpoints (``POST /index/add``, ``DELETE /index/{id}``) always ask for
``Authorization: Bearer <token>``; read endpoints too when the server is bound beyond loopback.
"""

import math
import secrets
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional

from fastapi import Depends, FastAPI, File, Form, Header, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from semcopy_lib.app.contract import search_json
from semcopy_lib.app.remote import MAX_K, MAX_UPLOAD_BYTES
from semcopy_lib.app.images import ImageLoadError

if TYPE_CHECKING:
    from semcopy_lib.app.service import SearchService


def create_app(service: "SearchService", token: str, protect_reads: bool = False) -> FastAPI:
    """The API over ``service``; ``token`` guards writes always, and reads when ``protect_reads``."""
    if not token:
        raise ValueError("the API needs a token for its write endpoints")
    app = FastAPI(title="semcopy", description="Find semantic copies of images in a gallery.")
    service.prepare()  # before the first request comes
    lock = threading.Lock()

    def locked(work: Callable[[], Any]) -> Any:
        with lock:
            return work()

    # Starlette's exception, which FastAPI's subclasses: an unknown route's 404 answers the same way
    @app.exception_handler(StarletteHTTPException)
    async def one_line(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code,
                            headers={"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        """A missing or mistyped field: ``field: what is wrong``, the fields in one line."""
        said = "; ".join(f"{'.'.join(str(part) for part in e.get('loc', ())[1:]) or 'request'}: {e.get('msg', 'invalid')}"
                         for e in exc.errors())
        return JSONResponse({"error": " ".join(said.split())}, status_code=422)

    def bearer(authorization: Optional[str]) -> None:
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not given or not secrets.compare_digest(given, token):
            raise HTTPException(401, "give the API token: Authorization: Bearer <token>")

    def reader(authorization: Optional[str] = Header(default=None)) -> None:
        if protect_reads:
            bearer(authorization)

    def writer(authorization: Optional[str] = Header(default=None)) -> None:
        bearer(authorization)

    async def read_upload(file: UploadFile) -> bytes:
        data = await file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise HTTPException(413, f"{file.filename}: over the {MAX_UPLOAD_BYTES // 2**20} MB upload limit")
        return data

    @app.post("/search", dependencies=[Depends(reader)])
    async def search(file: UploadFile = File(...), k: int = Form(10), regions: bool = Form(True)) -> dict:
        """Search one image: the same JSON as ``semcopy search --json`` prints for it."""
        if not 1 <= k <= MAX_K:
            raise HTTPException(422, f"k must be 1 to {MAX_K}")
        data = await read_upload(file)
        [result] = locked(lambda: service.search([data], k=k, regions=regions, names=[file.filename or "upload"]))
        if result.error:
            raise HTTPException(422, result.error)
        return search_json(result)

    @app.get("/index/info", dependencies=[Depends(reader)])
    def info() -> dict:
        """Count, encoder, dimension and settings of the index."""
        return locked(service.index.info)

    @app.get("/images/{gallery_id:path}", dependencies=[Depends(reader)])
    def image(gallery_id: str) -> FileResponse:
        """The gallery image's file: only an image file inside the gallery folder or the index's uploads
        (an index's records could name any path)."""
        path = locked(lambda: service.index.gallery_file(gallery_id))
        if path is None:
            raise HTTPException(404, f"{gallery_id}: no image file to send")
        return FileResponse(path)

    @app.get("/thumbs/{gallery_id:path}", dependencies=[Depends(reader)])
    def thumb(gallery_id: str) -> Response:
        """The gallery image's PNG thumbnail."""
        png = locked(lambda: service.thumbnail(gallery_id))
        if png is None:
            raise HTTPException(404, f"{gallery_id}: no thumbnail")
        return Response(png, media_type="image/png", headers={"X-Content-Type-Options": "nosniff"})

    @app.post("/index/add", dependencies=[Depends(writer)])
    async def add(file: UploadFile = File(...), label: str = Form(...)) -> dict:
        """Add an image to the gallery under class ``label``; returns its gallery id."""
        data = await read_upload(file)
        try:
            return {"id": locked(lambda: service.add_upload(data, file.filename or "upload", label))}
        except (ImageLoadError, ValueError) as exc:
            raise HTTPException(422, " ".join(str(exc).split())) from None

    @app.delete("/index/{gallery_id:path}", dependencies=[Depends(writer)])
    def remove(gallery_id: str) -> dict:
        """Remove an image from the index (its file stays where it is)."""
        if locked(lambda: service.index.remove([gallery_id])):
            raise HTTPException(404, f"{gallery_id}: not in the gallery")
        return {"removed": gallery_id}

    @app.get("/dedup", dependencies=[Depends(reader)])
    def dedup(threshold: Optional[float] = None, level: str = "copy") -> dict:
        """The gallery's groups of copies (as ``semcopy dedup --json``, one object per group)."""
        if threshold is not None and not (math.isfinite(threshold) and -1.0 <= threshold <= 1.0):
            raise HTTPException(422, "threshold must be a cosine, -1 to 1")
        try:
            found = locked(lambda: service.duplicates(threshold, level))
        except ValueError as exc:
            raise HTTPException(422, " ".join(str(exc).split())) from None
        return {"threshold": found["threshold"], "groups": found["groups"]}

    return app
