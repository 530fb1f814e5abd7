"""``semcopy serve``: run Voila on the dashboard notebook (:data:`NOTEBOOK`) over an index.

The model and index are loaded once, here, and shared by every browser session through a search
server on a private Unix socket (:mod:`semcopy_lib.app.remote`); each session's kernel holds widgets
only, and talks to Voila over IPC sockets in Jupyter's private runtime folder where the platform has
them (not TCP on localhost). Voila binds 127.0.0.1 unless ``--host`` says otherwise, and asks for a
token on any other address.

Uploads: the page is rendered with the ``semcopy`` Voila template (:func:`write_settings`), whose
script sends a file over the cap (``SEMCOPY_MAX_UPLOAD_MB``) as its name and size only, so the kernel
answers it with one line; the websocket takes messages up to :func:`websocket_limit`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from semcopy_lib.app.access import access_token
from semcopy_lib.app.remote import MAX_FILES, MAX_UPLOAD_BYTES
from semcopy_lib.dashboard.map_view import PLOTLY_URL_ENV
from semcopy_lib.dashboard.search_app import INDEX_ENV

#: The dashboard notebook, package data: in a checkout a symlink to ``dashboards/search.ipynb`` (the one
#: Binder's Voila opens), in an installed wheel a copy of it.
NOTEBOOK = Path(__file__).parent / "search.ipynb"
TEMPLATE = "semcopy"
#: Seconds Voila waits for the dashboard cell's output after the cell ran (nbclient's default, 4, left
#: pages blank, without their widgets, when sessions opened while others searched on 2 busy cores).
IOPUB_TIMEOUT_S = 60
#: The map's plotly.js as the page asks for it, relative to Voila's base URL (the template's static files).
PLOTLY_URL = f"templates/{TEMPLATE}/static/plotly.min.js"

#: The page's script: a file over ``cap`` bytes is read as an empty one (FileUpload still sends its
#: name and size), so it never reaches the websocket's limit and the kernel can say it is too big.
UPLOAD_GUARD = """<script>
(function () {
  var cap = %d, read = FileReader.prototype.readAsArrayBuffer;
  FileReader.prototype.readAsArrayBuffer = function (blob) {
    return read.call(this, blob && blob.size > cap ? new Blob([]) : blob);
  };
})();
</script>"""


def websocket_limit(cap: int = MAX_UPLOAD_BYTES) -> int:
    """Bytes of one websocket message: the most files of one search at the cap, plus room for the
    rest of the message (Tornado's default, 10 MiB, silently dropped any bigger upload)."""
    return MAX_FILES * cap + 16 * 2**20


def write_settings(root: Path, cap: int = MAX_UPLOAD_BYTES, token: str = "") -> Path:
    """Write, under ``root`` (a private folder), Voila's settings (``voila.json``: websocket messages
    up to :func:`websocket_limit`, the access ``token``, kept out of the command line that other users
    can list; ``root`` goes on ``$JUPYTER_CONFIG_PATH``) and the ``semcopy`` template (the lab template
    plus :data:`UPLOAD_GUARD`, and plotly.js as a static file, in ``root/voila/templates``; ``root`` goes
    on ``$JUPYTER_PATH``).
    Returns ``root``."""
    (root / "voila.json").write_text(json.dumps({"Voila": {
        "tornado_settings": {"websocket_max_message_size": websocket_limit(cap)}, "token": token}}))
    (root / "voila.json").chmod(0o600)
    folder = root / "voila" / "templates" / TEMPLATE
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "conf.json").write_text(json.dumps({"base_template": "lab"}))
    (folder / "index.html.j2").write_text(
        "{%- extends 'voila/templates/lab/index.html.j2' -%}\n"
        "{%- block html_head_js -%}\n{{ super() }}\n" + UPLOAD_GUARD % cap + "\n{%- endblock html_head_js -%}\n")
    (folder / "static").mkdir(exist_ok=True)  # the map's plotly.js, fetched once by a browser, not per session
    shutil.copyfile(plotly_js_file(), folder / "static" / "plotly.min.js")
    return root


def plotly_js_file() -> Path:
    """The plotly.js bundled with the plotly package."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def voila_command(notebook: Path, host: str, port: int) -> list[str]:
    """The Voila command line: sources stripped, no browser, bound to ``host``, the ``semcopy``
    template, kernels over IPC where there is IPC."""
    command = [
        sys.executable, "-m", "voila", str(notebook), f"--port={port}", f"--Voila.ip={host}",
        "--no-browser", "--strip_sources=True", "--show_tracebacks=False", f"--template={TEMPLATE}",
        f"--VoilaExecutor.iopub_timeout={IOPUB_TIMEOUT_S}",
    ]
    if os.name == "posix":
        command.append("--KernelManager.transport=ipc")
    return command


def serve(index_dir: os.PathLike | str, host: str = "127.0.0.1", port: int = 8866, token: str | None = None) -> int:
    """Serve the dashboard until interrupted; returns Voila's exit status. Beyond a loopback address
    the page asks for a token (:func:`access_token`); the URL printed carries it."""
    from semcopy_lib.app.remote import SERVICE_ENV, SearchServer
    from semcopy_lib.app.service import SearchService

    if not NOTEBOOK.is_file():
        raise FileNotFoundError(f"{NOTEBOOK}: dashboard notebook not found (a broken install or symlink)")
    service = SearchService.with_objects(index_dir)  # a clear error now rather than in the page
    service.gallery_map()  # the 2-D map is computed once and cached beside the index: pages open fast
    server = SearchServer(service).start()
    token = access_token(host, token)
    settings = write_settings(Path(tempfile.mkdtemp(prefix="semcopy-voila-")), token=token)
    env = dict(os.environ, **{INDEX_ENV: str(Path(index_dir).resolve()), SERVICE_ENV: str(server.socket_path),
                              PLOTLY_URL_ENV: PLOTLY_URL})
    for var in ("JUPYTER_PATH", "JUPYTER_CONFIG_PATH"):
        env[var] = os.pathsep.join(filter(None, [str(settings), os.environ.get(var)]))
    url = f"http://{host}:{port}/" + (f"?token={token}" if token else "")
    print(f"semcopy dashboard on {url} (Ctrl-C stops)", file=sys.stderr, flush=True)
    child = subprocess.Popen(voila_command(NOTEBOOK.resolve(), host, port), env=env)
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
        shutil.rmtree(settings, ignore_errors=True)
