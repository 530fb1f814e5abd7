"""``semcopy serve``: run Voila on ``dashboards/search.ipynb`` over an index."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from semcopy_lib.dashboard.search_app import INDEX_ENV
from semcopy_lib.index import GalleryIndex

NOTEBOOK = Path(__file__).resolve().parents[2] / "dashboards" / "search.ipynb"


def voila_command(notebook: Path, host: str, port: int) -> list[str]:
    """The Voila command line: sources stripped, no browser, bound to ``host``."""
    return [
        sys.executable, "-m", "voila", str(notebook), f"--port={port}", f"--Voila.ip={host}",
        "--no-browser", "--strip_sources=True", "--show_tracebacks=False",
    ]


def serve(index_dir: os.PathLike | str, host: str = "127.0.0.1", port: int = 8866) -> int:
    """Serve the dashboard until interrupted; returns Voila's exit status."""
    from semcopy_lib.app.gallery_map import gallery_map

    index = GalleryIndex.open(index_dir)  # a clear error now rather than in the page
    try:
        gallery_map(index)  # the 2-D map is computed once and cached beside the index: pages open fast
    finally:
        index.close()
    if not NOTEBOOK.is_file():
        raise FileNotFoundError(f"{NOTEBOOK}: dashboard notebook not found (run from a source checkout)")
    env = dict(os.environ, **{INDEX_ENV: str(Path(index_dir).resolve())})
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
