"""``semcopy serve``: run Voila on ``dashboards/search.ipynb`` over an index.

The model and index are loaded once, here, and shared by every browser session through a search
server on a private Unix socket (:mod:`semcopy_lib.app.remote`); each session's kernel holds widgets
only. Voila binds 127.0.0.1 unless ``--host`` says otherwise.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from semcopy_lib.dashboard.search_app import INDEX_ENV

NOTEBOOK = Path(__file__).resolve().parents[2] / "dashboards" / "search.ipynb"


def voila_command(notebook: Path, host: str, port: int) -> list[str]:
    """The Voila command line: sources stripped, no browser, bound to ``host``."""
    return [
        sys.executable, "-m", "voila", str(notebook), f"--port={port}", f"--Voila.ip={host}",
        "--no-browser", "--strip_sources=True", "--show_tracebacks=False",
    ]


def serve(index_dir: os.PathLike | str, host: str = "127.0.0.1", port: int = 8866) -> int:
    """Serve the dashboard until interrupted; returns Voila's exit status."""
    from semcopy_lib.app.remote import SERVICE_ENV, SearchServer
    from semcopy_lib.app.service import SearchService
    from semcopy_lib.detect import load_detector

    if not NOTEBOOK.is_file():
        raise FileNotFoundError(f"{NOTEBOOK}: dashboard notebook not found (run from a source checkout)")
    service = SearchService(index_dir, detector=load_detector())  # a clear error now rather than in the page
    service.gallery_map()  # the 2-D map is computed once and cached beside the index: pages open fast
    server = SearchServer(service).start()
    env = dict(os.environ, **{INDEX_ENV: str(Path(index_dir).resolve()), SERVICE_ENV: str(server.socket_path)})
    print(f"semcopy dashboard on http://{host}:{port}/ (Ctrl-C stops)", file=sys.stderr, flush=True)
    child = subprocess.Popen(voila_command(NOTEBOOK, host, port), env=env)
    # a SIGTERM to `semcopy serve` (a supervisor, a test) stops Voila and its kernels too, not just us
    signal.signal(signal.SIGTERM, lambda *_: child.terminate())
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.terminate()
        child.wait(timeout=20)
        return 0
    finally:
        server.close()
