"""One search service shared by every dashboard session: a small HTTP server on a Unix socket.

``semcopy serve`` loads the model and index once, in its own process, and serves them on a socket in
a private folder (mode 0700, so only this user can connect); each Voila kernel (one per browser
session) talks to it through :class:`RemoteSearchService`, which has the methods the dashboard uses
and imports neither torch nor the model. A session then costs its widgets, not another model.

Requests (JSON; images travel base64-encoded):

- ``GET /describe`` -> :meth:`SearchService.describe`
- ``POST /search`` ``{"k", "queries": [{"name", "data"}]}`` -> ``{"results": [result_to_dict...]}``
- ``POST /add_upload`` ``{"name", "label", "data"}`` -> ``{"gallery_id"}``
- ``POST /duplicates`` ``{"threshold": float | null, "level"}`` -> :meth:`SearchService.duplicates`
- ``GET /gallery_map`` -> ``{"ids", "labels", "sources", "xy"}``

Errors come back as ``{"error": "one line"}`` with status 400 (the request's fault) or 500.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import logging.handlers
import os
import socket
import socketserver
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from semcopy_lib.app.results import QueryResult, result_from_dict, result_to_dict

if TYPE_CHECKING:
    from semcopy_lib.app.gallery_map import GalleryMap
    from semcopy_lib.app.service import SearchService

#: The environment variable that tells a dashboard kernel where the shared service listens.
SERVICE_ENV = "SEMCOPY_SERVICE"
#: Uploads larger than this are refused with a message ($SEMCOPY_MAX_UPLOAD_MB, default 25; pixels
#: are capped by the image loader, $SEMCOPY_MAX_PIXELS).
MAX_UPLOAD_BYTES = int(float(os.environ.get("SEMCOPY_MAX_UPLOAD_MB", "25")) * 1024 * 1024)
#: Files of one request (a dashboard upload may hold several).
MAX_FILES = 8
#: Largest request body accepted: MAX_FILES uploads at the cap, base64-encoded (4/3), plus the JSON.
MAX_REQUEST_BYTES = MAX_FILES * MAX_UPLOAD_BYTES * 4 // 3 + 2**20
#: Most hits a search may ask for (the dashboard offers 50): ranking and sending more is only cost.
MAX_K = 100
#: The service's log, in the index folder: kept to this many bytes, and this many older files.
LOG_NAME, LOG_BYTES, LOG_BACKUPS = "serve.log", 2**20, 3

log = logging.getLogger(__name__)


class ServiceError(RuntimeError):
    """The shared search service refused or failed a request; ``str(err)`` is its one-line reason."""


class _Handler(BaseHTTPRequestHandler):
    server: "SearchServer"
    protocol_version = "HTTP/1.1"

    def address_string(self) -> str:  # a Unix socket has no client address
        return "local"

    def log_message(self, format: str, *args: Any) -> None:  # each request is logged by _answer instead
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            raise ValueError(f"request of {length} bytes is over the {MAX_REQUEST_BYTES} limit")
        return json.loads(self.rfile.read(length) or b"{}")

    def _answer(self, work) -> None:
        from semcopy_lib.data import ImageLoadError

        start = time.perf_counter()
        try:
            body = work()
        except (ValueError, KeyError, TypeError, ImageLoadError) as exc:
            status, body = 400, {"error": " ".join(str(exc).split()) or type(exc).__name__}
            log.warning("%s %s: 400 %s", self.command, self.path, body["error"])
        except Exception as exc:  # noqa: BLE001 - a failed request must not stop the server
            status, body = 500, {"error": f"{type(exc).__name__}: {' '.join(str(exc).split())}"}
            log.exception("%s %s: 500", self.command, self.path)  # the traceback, for whoever runs serve
        else:
            status = 200
            log.info("%s %s: 200 in %.0f ms", self.command, self.path, (time.perf_counter() - start) * 1000)
        self._send(status, body)

    def do_GET(self) -> None:
        service, lock = self.server.service, self.server.lock
        if self.path == "/describe":
            self._answer(lambda: _locked(lock, service.describe))
        elif self.path == "/gallery_map":
            def gallery_map() -> dict:
                m = _locked(lock, service.gallery_map)
                return {"ids": m.ids, "labels": m.labels, "sources": m.sources, "xy": np.asarray(m.xy).tolist()}
            self._answer(gallery_map)
        else:
            self._send(404, {"error": f"no such request: GET {self.path}"})

    def do_POST(self) -> None:
        service, lock = self.server.service, self.server.lock
        if self.path == "/search":
            def search() -> dict:
                req = self._body()
                queries, k = req["queries"], int(req["k"])
                if not 1 <= k <= MAX_K or len(queries) > MAX_FILES:
                    raise ValueError(f"k must be 1 to {MAX_K} and at most {MAX_FILES} queries a request "
                                     f"(asked k={k}, {len(queries)} queries)")
                contents = [base64.b64decode(q["data"]) for q in queries]
                results = _locked(lock, lambda: service.search(contents, k=k, names=[q["name"] for q in queries]))
                return {"results": [result_to_dict(r) for r in results]}
            self._answer(search)
        elif self.path == "/duplicates":
            def duplicates() -> dict:
                req = self._body()
                return _locked(lock, lambda: service.duplicates(req.get("threshold"), req.get("level", "copy")))
            self._answer(duplicates)
        elif self.path == "/add_upload":
            def add_upload() -> dict:
                req = self._body()
                data = base64.b64decode(req["data"])
                return {"gallery_id": _locked(lock, lambda: service.add_upload(data, req["name"], req["label"]))}
            self._answer(add_upload)
        else:
            self._send(404, {"error": f"no such request: POST {self.path}"})


def _locked(lock: threading.Lock, work):
    """Run ``work`` holding ``lock``: the model and index serve one request at a time (torch already
    uses every core for one batch; sessions take turns, a search is well under a second)."""
    with lock:
        return work()


def _log_file(index_dir: Path | None) -> logging.Handler | None:
    """This module's log goes to stderr (set up once) and, returned here, to ``INDEX_DIR/serve.log``
    (rotated), added to the log; None when that folder cannot be written."""
    form = logging.Formatter("%(asctime)s semcopy serve: %(levelname)s %(message)s")
    if not log.handlers:
        log.setLevel(logging.INFO)
        log.propagate = False
        stream = logging.StreamHandler()
        stream.setFormatter(form)
        log.addHandler(stream)
    if index_dir is None:
        return None
    try:
        handler = logging.handlers.RotatingFileHandler(Path(index_dir) / LOG_NAME, maxBytes=LOG_BYTES,
                                                       backupCount=LOG_BACKUPS, encoding="utf-8")
    except OSError as exc:
        log.warning("no log file in %s: %s", index_dir, exc)
        return None
    handler.setFormatter(form)
    log.addHandler(handler)
    return handler


class SearchServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Serve one :class:`SearchService` on a Unix socket, a thread per connection.

    >>> server = SearchServer(service)          # a socket in a new private folder
    >>> threading.Thread(target=server.serve_forever, daemon=True).start()
    >>> RemoteSearchService(server.socket_path).search([b"..."], k=5)
    """

    daemon_threads = True
    #: Connections waiting to be accepted: every browser session's kernel may ask at once, and a busy
    #: machine accepts late (socketserver's default, 5, refused connections under load).
    request_queue_size = 128

    def __init__(self, service: "SearchService", socket_path: os.PathLike | str | None = None):
        self.log_file = _log_file(getattr(service.index, "directory", None))
        if socket_path is None:
            folder = Path(tempfile.mkdtemp(prefix="semcopy-"))  # mode 0700: only this user connects
            socket_path = folder / "search.sock"
        self.socket_path = Path(socket_path)
        self.service = service
        service.prepare()  # while the first sessions open
        self.lock = threading.Lock()
        super().__init__(str(self.socket_path), _Handler)
        os.chmod(self.socket_path, 0o600)

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        if self.log_file is not None:
            log.removeHandler(self.log_file)
            self.log_file.close()
        try:
            self.socket_path.unlink()
            if self.socket_path.parent.name.startswith("semcopy-"):
                self.socket_path.parent.rmdir()
        except OSError:
            pass

    def start(self) -> "SearchServer":
        """Serve in a daemon thread; returns self."""
        threading.Thread(target=self.serve_forever, name="semcopy-search-server", daemon=True).start()
        return self


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        """Connect, waiting (up to the timeout) while the server's queue of connections is full: a Unix
        socket then refuses at once (EAGAIN) instead of waiting, as TCP would."""
        deadline = time.monotonic() + (self.timeout if isinstance(self.timeout, (int, float)) else 60)
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(self.timeout)
            try:
                self.sock.connect(self._path)
                return
            except BlockingIOError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)


class _EncoderFacts:
    """The encoder facts a dashboard shows (name and measured thresholds), without the model."""

    def __init__(self, name: str, copy_score: float | None, subject_score: float | None):
        self.name, self.copy_score, self.subject_score = name, copy_score, subject_score


class RemoteSearchService:
    """The dashboard's side of :class:`SearchServer`: the same methods as :class:`SearchService`'s
    ``search``, ``add_upload``, ``describe`` and ``gallery_map``, over the socket.

    Raises:
        ServiceError: on any refused or failed request (one line), or when the server is gone.
    """

    def __init__(self, socket_path: os.PathLike | str, timeout: float = 300.0):
        self.socket_path = str(socket_path)
        self.timeout = timeout
        facts = self.describe()
        self.encoder = _EncoderFacts(facts["encoder"], facts["copy_score"], facts["subject_score"])

    def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        conn = _UnixConnection(self.socket_path, self.timeout)
        try:
            data = json.dumps(body).encode("utf-8") if body is not None else None
            conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            answer = json.loads(resp.read() or b"{}")
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise ServiceError(f"the semcopy search service ({self.socket_path}) is not answering: {exc}") from None
        finally:
            conn.close()
        if resp.status != 200:
            raise ServiceError(answer.get("error") or f"HTTP {resp.status}")
        return answer

    def describe(self) -> dict:
        return self._request("GET", "/describe")

    def search(self, queries: Sequence[bytes], k: int = 10, names: Sequence[str] | None = None) -> list[QueryResult]:
        names = list(names) if names is not None else [f"query-{i}" for i in range(len(queries))]
        body = {"k": int(k), "queries": [{"name": n, "data": base64.b64encode(bytes(q)).decode("ascii")}
                                         for n, q in zip(names, queries)]}
        return [result_from_dict(r) for r in self._request("POST", "/search", body)["results"]]

    def add_upload(self, content: bytes, name: str, label: str) -> str:
        body = {"name": name, "label": label, "data": base64.b64encode(content).decode("ascii")}
        return self._request("POST", "/add_upload", body)["gallery_id"]

    def duplicates(self, threshold: float | None = None, level: str = "copy") -> dict:
        return self._request("POST", "/duplicates", {"threshold": threshold, "level": level})

    def gallery_map(self) -> "GalleryMap":
        from semcopy_lib.app.gallery_map import GalleryMap

        m = self._request("GET", "/gallery_map")
        xy = np.asarray(m["xy"], dtype=np.float32).reshape(-1, 2)
        return GalleryMap(m["ids"], m["labels"], m["sources"], xy, np.zeros((len(m["ids"]), 0), np.float32))
