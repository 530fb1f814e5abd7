"""Render docs/dashboard.jpg: `semcopy serve` on the demo index answering a web-page screenshot query.

Run after `make demo-build`: .venv/bin/python scripts/dashboard_screenshot.py (needs Debian's chromium).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / ".cache" / "demo"
OUT = ROOT / "docs" / "dashboard.jpg"


def main() -> None:
    from playwright.sync_api import sync_playwright

    from semcopy_lib.data import load_image
    from semcopy_lib.data.webpages import chromium_path, render_pages

    picture = load_image(next((DEMO / "gallery" / "coffee").glob("*")))
    page_shot, _ = next(render_pages([picture], seed=3, families=("site",)))
    query = Path(tempfile.mkdtemp()) / "landing page.png"
    page_shot.save(query)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve = subprocess.Popen([sys.executable, "-m", "semcopy_lib", "serve", "--index", str(DEMO / "index"),
                              "--port", str(port)])
    try:
        for _ in range(480):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium_path(), headless=True)
            page = browser.new_page(viewport={"width": 1300, "height": 1250})
            page.goto(f"http://127.0.0.1:{port}/", timeout=180_000)
            page.get_by_role("button", name="Search").wait_for(timeout=180_000)
            with page.expect_file_chooser() as chooser:
                page.locator("button.widget-upload").click()
            chooser.value.set_files(str(query))
            page.get_by_role("button", name="Search").click()
            page.locator('.semcopy-done[data-run="1"]').wait_for(state="attached", timeout=180_000)
            page.wait_for_timeout(1500)
            png = Path(tempfile.mkdtemp()) / "shot.png"
            page.screenshot(path=str(png))
            browser.close()
        Image.open(png).convert("RGB").save(OUT, "JPEG", quality=82, optimize=True)
        print(OUT, OUT.stat().st_size)
    finally:
        serve.terminate()
        serve.wait(timeout=60)


if __name__ == "__main__":
    main()
