"""`make lab`: JupyterLab on notebooks/ with the project's venv as its kernel (the analysts' command)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from conftest import stop_group

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)
#: Seconds JupyterLab may take to answer (its first start on a busy 2-core machine is slow).
START_S = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_default_kernel_is_this_venvs_python():
    """`python3`, the kernel JupyterLab offers first, is ipykernel's spec inside this venv; its "python"
    is replaced by the Python that runs Jupyter, so notebooks import the semcopy installed here."""
    listing = subprocess.run([str(VENV / "bin" / "jupyter"), "kernelspec", "list", "--json"],
                             capture_output=True, text=True, check=True)
    spec = json.loads(listing.stdout)["kernelspecs"]["python3"]
    assert Path(spec["resource_dir"]).resolve().is_relative_to(VENV.resolve()), spec["resource_dir"]
    assert spec["spec"]["argv"][0] in ("python", "python3", str(VENV / "bin" / "python"))


def test_make_lab_serves_the_notebooks(tmp_path):
    """`make lab` (this venv, its install step taken as done): /lab answers 200, the notebooks are listed."""
    assert shutil.which("make"), "make is needed for `make lab`"
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_TOKEN=token, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    stamp = VENV / ".semcopy-installed"
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(["make", "-C", str(ROOT), "lab", f"VENV={VENV}", f"LAB_PORT={port}", "-o", str(stamp)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"token {token}"}
    try:
        deadline = time.monotonic() + START_S
        while True:
            try:
                page = httpx.get(f"{base}/lab", headers=auth, timeout=5)
                break
            except httpx.TransportError:
                assert proc.poll() is None, (tmp_path / "lab.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "lab.log").read_text()
                time.sleep(0.5)
        assert page.status_code == 200 and "JupyterLab" in page.text
        assert httpx.get(f"{base}/api/contents/", timeout=5).status_code == 403  # no token, no listing
        listing = httpx.get(f"{base}/api/contents/", headers=auth, timeout=30)
        assert listing.status_code == 200
        names = {item["name"] for item in listing.json()["content"]}
        assert {p.name for p in (ROOT / "notebooks").glob("*.ipynb")} <= names
        assert "quickstart.ipynb" in names
        specs = httpx.get(f"{base}/api/kernelspecs", headers=auth, timeout=30).json()
        assert specs["default"] == "python3"
    finally:
        stop_group(proc)  # make and the JupyterLab it started (their own group)
        log.close()
