"""The wheel works outside the checkout: built, installed into a fresh virtualenv, and the CLI and the
dashboard run from there (the dashboard notebook and the weights are package data)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import httpx
from conftest import stop_group
import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Not part of a clean clone, or not needed to build the wheel.
IGNORE = shutil.ignore_patterns(".git", ".venv", ".cache", "build", "dist", "*.egg-info", "__pycache__",
                                ".pytest_cache", ".hypothesis", ".ipynb_checkpoints")
#: Seconds `semcopy serve` may take to answer its first page (Voila, a kernel, the notebook run).
SERVE_S = 240


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the semcopy wheel installed (``--no-deps``); the dependencies are this test run's
    own, seen through a path line in a .pth file (a path line adds the folder only: the .pth files in it,
    the checkout's editable install among them, are not run). Returns the venv's bin folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=IGNORE)  # build in a copy: no build/ in the checkout
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-w", str(tmp / "dist"), str(src)], check=True)
    (wheel,) = (tmp / "dist").glob("semcopy-*.whl")

    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "semcopy-test-deps.pth").write_text("".join(f"{d}\n" for d in deps))
    # Jupyter's data files (Voila's templates, the widgets' lab extension) as pip puts them for each package
    (venv / "share").mkdir(exist_ok=True)
    (venv / "share" / "jupyter").symlink_to(Path(sys.prefix) / "share" / "jupyter")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--disable-pip-version-check", str(wheel)], check=True)
    return venv / "bin"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return env


def _run(bin_dir: Path, cwd: Path, *args: str) -> str:
    done = subprocess.run([str(bin_dir / "semcopy"), *args], cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"semcopy {' '.join(args)}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_installed_package_is_the_wheels(installed, tmp_path):
    python = installed / "python"
    probe = ("import cv2, scipy.ndimage, semcopy_lib, semcopy_lib.dashboard.serve as s; "
             "print(semcopy_lib.__file__); print(s.NOTEBOOK.is_file() and not s.NOTEBOOK.is_symlink())")
    out = subprocess.run([str(python), "-c", probe], cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    where, notebook_shipped = out.stdout.split()
    assert Path(where).is_relative_to(installed.parent) and not Path(where).is_relative_to(ROOT), where
    assert notebook_shipped == "True"  # a copy in the wheel, not the checkout's symlink
    from semcopy_lib import __version__

    assert _run(installed, tmp_path, "--version").strip() == f"semcopy {__version__}"


def test_cli_and_dashboard_run_from_the_wheel(installed, gallery_dir, tmp_path):
    """`semcopy encoders`, `index build`, `search` and `serve` (HTTP 200, the notebook's widget on the page)
    from a folder outside the checkout."""
    encoders = json.loads(_run(installed, tmp_path, "encoders", "--json"))
    assert "effnet-lite0-semcopy" in json.dumps(encoders)

    index = tmp_path / "idx"
    _run(installed, tmp_path, "index", "build", str(gallery_dir), "--index", str(index))
    query = gallery_dir / "food" / "img04.png"
    (line,) = _run(installed, tmp_path, "search", "--index", str(index), "-k", "3", "--json", str(query)).splitlines()
    hits = json.loads(line)["hits"]
    assert hits and hits[0]["id"] == "food/img04.png", hits

    port = _free_port()
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([str(installed / "semcopy"), "serve", "--index", str(index), "--port", str(port)],
                            cwd=tmp_path, env=_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVE_S
        while True:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=SERVE_S)
                break
            except httpx.TransportError:
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.5)
        assert page.status_code == 200, page.text[:500]
        assert "application/vnd.jupyter.widget-view+json" in page.text, (tmp_path / "serve.log").read_text()
    finally:
        stop_group(proc)  # serve stops Voila and its kernels; all in their own group
        log.close()
