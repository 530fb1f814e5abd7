"""The dashboard in a real browser: `semcopy serve` + Voila + headless Chromium (Playwright)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]

if not os.path.exists(CHROMIUM) and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (apt-get install chromium); CI installs it", allow_module_level=True)

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(gallery_dir, tmp_path_factory):
    from semcopy_lib.app import build_index

    index = tmp_path_factory.mktemp("e2e") / "idx"
    build_index(gallery_dir, index, progress=False)
    port = _free_port()
    log = open(tmp_path_factory.mktemp("log") / "voila.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "semcopy_lib", "serve", "--index", str(index), "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"semcopy serve exited with {proc.returncode}; see {log.name}")
            time.sleep(0.5)
    yield f"http://127.0.0.1:{port}/"
    proc.terminate()  # serve passes it on to Voila, which shuts its kernels down
    proc.wait(timeout=30)


def upload_and_search(page, path: Path) -> None:
    """Choose ``path`` in the FileUpload (its <input> is not in the DOM) and press Search."""
    with page.expect_file_chooser() as chooser:
        page.locator("button.widget-upload").click()
    chooser.value.set_files(str(path))
    page.get_by_role("button", name="Search").click()


def test_upload_search_shows_scored_hits(server, gallery_dir, tmp_path):
    from playwright.sync_api import sync_playwright

    query = gallery_dir / "food" / "img04.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(server, timeout=90_000)
        page.get_by_role("button", name="Search").wait_for(timeout=90_000)
        upload_and_search(page, query)
        page.locator(".semcopy-hit").first.wait_for(timeout=60_000)
        first = page.locator(".semcopy-hit").first.inner_text()
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        # a bad upload gives a one-line message in the page, not a traceback
        bad = tmp_path / "notes.png"
        bad.write_text("not an image")
        upload_and_search(page, bad)
        page.locator(".semcopy-error").first.wait_for(timeout=30_000)
        error_text = page.locator(".semcopy-error").first.inner_text()
        body = page.inner_text("body")
        browser.close()
    assert "food/img04.png" in first and "class: food" in first
    assert re.search(r"score 1\.000|score 0\.99\d", first)
    assert "notes.png" in error_text and "Traceback" not in body
