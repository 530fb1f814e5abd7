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


class _Url(str):
    """The dashboard's URL, with the pid of its `semcopy serve` process and its log file."""

    pid: int
    log: Path


#: Seconds `semcopy serve` may take to listen.
SERVER_START_S = 240


def start_serve(index: Path, log_path: Path, *args: str) -> tuple[subprocess.Popen, int]:
    """`semcopy serve` on ``index`` on a free port (``args`` added), once it listens."""
    port = _free_port()
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "semcopy_lib", "serve", "--index", str(index), "--port", str(port),
                             *args], stdout=log, stderr=subprocess.STDOUT)
    wait_listening(proc, port, log_path)
    return proc, port


def wait_listening(proc: subprocess.Popen, port: int, log_path: Path) -> None:
    """Return once ``proc`` listens on ``port``; raise (naming its log) if it exits or takes too long."""
    # the first start on a new machine also compiles and caches Jupyter's files: minutes on a busy 2-core box
    deadline, name = time.monotonic() + SERVER_START_S, " ".join(map(str, proc.args[2:4]))
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {log_path}")
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"{name} did not listen within {SERVER_START_S} s; see {log_path}")
            time.sleep(0.5)


@pytest.fixture(scope="module")
def index_dir(gallery_index, tmp_path_factory) -> Path:
    """A copy of the shared test index: the dashboard adds to it."""
    index = tmp_path_factory.mktemp("e2e") / "idx"
    shutil.copytree(gallery_index, index)
    return index


@pytest.fixture(scope="module")
def server(index_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("log") / "voila.log"
    proc, port = start_serve(index_dir, log)
    url = _Url(f"http://127.0.0.1:{port}/")
    url.pid, url.log = proc.pid, log
    yield url
    proc.terminate()  # serve passes it on to Voila, which shuts its kernels down
    proc.wait(timeout=30)


#: Screenshots of each state, to look at (CI keeps the folder as an artifact).
SHOTS = Path(os.environ.get("SEMCOPY_E2E_SHOTS", Path(__file__).resolve().parents[2] / ".cache" / "e2e-shots"))


def choose(page, path: Path) -> None:
    """Choose ``path`` in the FileUpload (ipywidgets 8 keeps its <input> out of the DOM) and wait until
    the kernel has it (the app names it): a Search pressed before searches the files chosen before."""
    with page.expect_file_chooser() as chooser:
        page.locator("button.widget-upload").click()
    chooser.value.set_files(str(path))
    page.locator(f'.semcopy-chosen[data-names="{path.name}"]').wait_for(state="attached", timeout=90_000)


def press_and_wait(page, button: str) -> None:
    """Press ``button`` and wait until the app has finished that action (its run counter moved on)."""
    done = page.locator(".semcopy-done")
    runs = int(done.get_attribute("data-run")) if done.count() else 0
    page.get_by_role("button", name=button).click()
    page.locator(f'.semcopy-done[data-run="{runs + 1}"]').wait_for(state="attached", timeout=90_000)


def upload_and_search(page, path: Path) -> None:
    """Choose ``path``, press Search and wait for the results."""
    choose(page, path)
    press_and_wait(page, "Search")


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def browser_page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1300, "height": 1000}, accept_downloads=True)
        start = time.monotonic()
        page.goto(server, timeout=90_000)
        page.get_by_role("button", name="Search").wait_for(timeout=90_000)
        page.ready_seconds = time.monotonic() - start
        yield page
        browser.close()


def first_hit(page) -> str:
    return page.locator(".semcopy-hit").first.inner_text()


def test_a_screenshot_query_shows_its_photo_region_the_hit_its_verdict_and_the_map(browser_page, gallery_dir, tmp_path):
    import random

    from semcopy_lib.data import compose, load_image

    page = browser_page
    target = gallery_dir / "food" / "img04.png"
    screenshot, _ = compose.page(load_image(target), random.Random(5), dark=False)
    query = tmp_path / "web page.png"
    screenshot.save(query)
    upload_and_search(page, query)
    shot(page, "1-screenshot-query")
    text = first_hit(page)
    assert "food/img04.png" in text and "class: food" in text
    assert re.search(r"score (0\.\d{3}|1\.000)", text) and re.search(r"copy|same subject", text)
    # where the hit's picture was found in the page's pixels (inside its photo region), shown beside the hit
    assert "matched:" in text and "match 1" in text
    assert "layout screenshot; 1 photo, 1 match" in page.inner_text("body")
    # the map is drawn by plotly in the page; the search ringed its hit and starred the query
    page.wait_for_function("() => (document.querySelector('div.semcopy-map')?.data || []).some(t => t.name === 'query')")
    traces = page.evaluate("() => document.querySelector('div.semcopy-map').data.map(t => [t.name, t.text])")
    names = [name for name, _ in traces]
    assert {"hits", "first hit", "query"} <= set(names) and names.index("hits") > names.index("food")
    assert "hit: food/img04.png" in dict(traces)["hits"] and dict(traces)["query"] == ["query: web page.png"]
    assert page.locator("div.semcopy-map .main-svg").count() >= 1  # drawn, not only sent
    page.locator("div.semcopy-map").scroll_into_view_if_needed()
    page.locator("div.semcopy-map").screenshot(path=str(SHOTS / "1-map.png"))


def test_a_collage_shows_several_regions(browser_page, gallery_dir, tmp_path):
    import random

    from semcopy_lib.data import compose, load_image

    page = browser_page
    tiles = [load_image(p) for p in sorted(gallery_dir.rglob("*.png"))[:4]]
    collage, _ = compose.collage(tiles[0], tiles[1:], random.Random(1), rows=2, cols=2, gutter=8)
    query = tmp_path / "collage.png"
    collage.save(query)
    upload_and_search(page, query)
    shot(page, "2-collage")
    assert "layout collage" in page.inner_text("body")
    assert page.locator(".semcopy-group").count() >= 3  # hits from several tiles


def test_a_composite_lists_both_sources_and_draws_its_residual(browser_page, gallery_dir, tmp_path):
    """One gallery picture pasted on another: the background is matched in the whole image, the pasted
    one in the residual region, drawn and named as its own region."""
    import random

    from semcopy_lib.data import compose, load_image

    page = browser_page
    background, pasted = sorted(gallery_dir.rglob("img00.png"))[0], sorted(gallery_dir.rglob("img07.png"))[0]
    composite, _ = compose.on_background(load_image(pasted), load_image(background), random.Random(4), scale=(0.4, 0.4))
    query = tmp_path / "composite.png"
    composite.save(query)
    upload_and_search(page, query)
    shot(page, "2-composite")
    body = page.inner_text("body")
    assert "1 residual" in body  # "Understood as: layout single; 1 residual, ..."
    titles = [t.inner_text() for t in page.locator(".semcopy-group h4").all()]
    assert titles[0].strip() == "matched in whole image"
    sources = page.locator(".semcopy-sources").inner_text()  # both sources, up front
    assert f"#1 {background.relative_to(gallery_dir).as_posix()} in whole image" in sources
    assert re.search(rf"#2 {pasted.relative_to(gallery_dir).as_posix()} in (residual|match) 1", sources)
    hits = [h.inner_text() for h in page.locator(".semcopy-hit").all()]
    whole_ids = [t for t in hits if background.relative_to(gallery_dir).as_posix() in t]
    assert whole_ids and any(pasted.relative_to(gallery_dir).as_posix() in t and ("residual 1" in t or "match 1" in t)
                             for t in hits)


def test_download_gives_a_zip_with_the_hits_csv(browser_page, tmp_path):
    import zipfile

    page = browser_page
    page.get_by_role("button", name="Download hits (ZIP)").click()
    with page.expect_download() as download:
        page.locator("a.semcopy-zip").click()
    path = tmp_path / "hits.zip"
    download.value.save_as(path)
    with zipfile.ZipFile(path) as zf:
        rows = zf.read("hits.csv").decode().splitlines()
        assert rows[0] == "query,rank,id,score,verdict" and len(rows) > 1
        assert len(zf.namelist()) > 1  # the hit images


def test_a_corrupt_upload_is_one_line_in_the_page(browser_page, tmp_path):
    page = browser_page
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    upload_and_search(page, bad)
    shot(page, "3-corrupt-upload")
    error_text = page.locator(".semcopy-error").first.inner_text()
    assert "notes.png" in error_text and "\n" not in error_text.strip()
    assert "Traceback" not in page.inner_text("body")


def _noise_png(path: Path, side: int) -> Path:
    """An incompressible RGB PNG of ``side`` x ``side`` pixels (about 3 side^2 bytes)."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(side).integers(0, 256, (side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, compress_level=0)
    return path


def test_big_uploads_are_searched_or_refused_in_one_line(browser_page, tmp_path):
    """15 MB (under the 25 MB cap, over Tornado's default 10 MiB message) is searched; 40 MB is
    refused by name in one line. Before, both left the page at "Upload (0)" without a word."""
    page = browser_page
    under = _noise_png(tmp_path / "fifteen.png", 2240)  # 15.1 MB
    upload_and_search(page, under)
    shot(page, "6-upload-15mb")
    assert under.stat().st_size > 14 * 2**20 and not page.locator(".semcopy-error").count()
    assert page.locator(".semcopy-hit").count() > 0
    over = _noise_png(tmp_path / "forty.png", 3660)  # 40.2 MB
    upload_and_search(page, over)
    shot(page, "6-upload-40mb")
    error_text = page.locator(".semcopy-error").first.inner_text().strip()
    assert error_text == f"forty.png: too big ({over.stat().st_size / 2**20:.1f} MB > 25 MB)"
    assert "Traceback" not in page.inner_text("body")


def test_kernels_talk_over_ipc_sockets_not_tcp(server, browser_page):
    import json

    folder = re.search(r"Storing connection files in (\S+?)\.?$", server.log.read_text(), re.M).group(1)
    files = list(Path(folder).glob("kernel-*.json"))
    assert files and all(json.loads(f.read_text())["transport"] == "ipc" for f in files)


def test_beyond_localhost_the_page_asks_for_the_token_it_prints(index_dir, browser_page, tmp_path):
    import urllib.request

    proc, port = start_serve(index_dir, tmp_path / "serve.log", "--host", "0.0.0.0")
    try:
        printed = re.search(r"semcopy dashboard on http://0\.0\.0\.0:\d+/\?token=(\S+) ", (tmp_path / "serve.log").read_text())
        assert printed, (tmp_path / "serve.log").read_text()
        token = printed.group(1)
        bare = f"http://127.0.0.1:{port}/"
        with urllib.request.urlopen(bare, timeout=60) as answer:  # no token: Voila's login page, not the app
            assert "/login" in answer.geturl() and "kernelId" not in answer.read().decode()  # no kernel started
        page = browser_page.context.browser.new_page()
        page.goto(f"{bare}?token={token}", timeout=90_000)
        page.get_by_role("button", name="Search").wait_for(timeout=90_000)  # with it: the app, widgets and all
        page.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_add_to_gallery_makes_the_next_search_find_it(browser_page, tmp_path):
    import random

    from semcopy_lib.data import compose

    page = browser_page
    new = tmp_path / "new picture.png"
    compose.random_picture(random.Random(42), (300, 220)).save(new)
    choose(page, new)
    page.get_by_placeholder("class name, e.g. animals/cats").fill("added")
    press_and_wait(page, "Add to gallery")
    assert "Added added/new_picture.png" in page.inner_text("body")
    upload_and_search(page, new)
    shot(page, "4-after-add")
    assert "added/new_picture.png" in first_hit(page)
    assert page.ready_seconds < 60  # cold start here (a fresh kernel loads the model): far under in practice


def test_the_duplicates_view_shows_a_copy_added_to_the_gallery(browser_page, gallery_dir):
    page = browser_page
    choose(page, gallery_dir / "food" / "img10.png")  # an image no later test searches for
    page.get_by_placeholder("class name, e.g. animals/cats").fill("copies")
    press_and_wait(page, "Add to gallery")
    press_and_wait(page, "Find duplicates")
    page.locator(".semcopy-report").scroll_into_view_if_needed()
    shot(page, "7-duplicates")
    assert "1 group(s), 1 image(s) besides their keepers" in page.locator(".semcopy-dups").inner_text()
    strip = page.locator(".semcopy-report figure")
    assert strip.count() == 2 and "food/img10.png" in strip.first.inner_text() and "keeper" in strip.first.inner_text()


def _kernel_rss_mb(serve_pid: int) -> list[float]:
    """Resident memory of each Jupyter kernel that `semcopy serve` (through Voila) started."""
    import psutil

    kernels = [p for p in psutil.Process(serve_pid).children(recursive=True)
               if "ipykernel" in " ".join(p.cmdline())]
    return [p.memory_info().rss / 2**20 for p in kernels]


def test_several_sessions_search_at_once_without_error_and_share_one_model(server, browser_page, gallery_dir, tmp_path):
    """Three more browser sessions (three more Voila kernels) press Search together; each gets its own
    right first hit, and no kernel holds a model: each stays far below one that imports torch (~540 MB)."""
    import random

    from semcopy_lib.data import compose, load_image

    targets = ["animals/img00.png", "food/img04.png", "shapes/stars/img08.png"]
    queries = []
    for i, target in enumerate(targets):
        page_img, _ = compose.page(load_image(gallery_dir / target), random.Random(20 + i), dark=bool(i % 2))
        queries.append(tmp_path / f"session {i}.png")
        page_img.save(queries[-1])
    browser = browser_page.context.browser
    contexts = [browser.new_context(viewport={"width": 1300, "height": 1000}) for _ in targets]
    try:
        pages = [c.new_page() for c in contexts]
        for page in pages:
            page.goto(server, timeout=90_000)
        for page in pages:
            page.get_by_role("button", name="Search").wait_for(timeout=90_000)
        for page, query in zip(pages, queries):
            choose(page, query)
        for page in pages:  # all three presses before any answer comes back
            page.get_by_role("button", name="Search").click()
        for page in pages:
            page.locator('.semcopy-done[data-run="1"]').wait_for(state="attached", timeout=120_000)
        for i, (page, target) in enumerate(zip(pages, targets)):
            shot(page, f"5-session-{i}")
            body = page.inner_text("body")
            assert "Traceback" not in body and not page.locator(".semcopy-error").count(), body[:500]
            assert target in first_hit(page)
        rss = _kernel_rss_mb(server.pid)
    finally:
        for c in contexts:
            c.close()
    assert len(rss) >= 4, rss
    print("kernel RSS MB:", [round(r) for r in rss])
    assert max(rss) < 300, rss


def test_outside_semcopy_serve_the_map_brings_its_own_plotly(browser_page, tmp_path):
    """Plain Voila (Binder opens the notebook so): no plotly.js file is served, the widget carries it."""
    import nbformat

    notebook = tmp_path / "map.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import numpy as np\n"
        "from semcopy_lib.app.gallery_map import GalleryMap\n"
        "from semcopy_lib.dashboard.map_view import MapWidget\n"
        "m = MapWidget(plotly_url='')\n"
        "m.show(GalleryMap(ids=['a/1.png', 'b/2.png'], labels=['a', 'b'], sources=['', ''],\n"
        "                  xy=np.array([[0.0, 0.0], [1.0, 1.0]]), vectors=np.eye(2)))\n"
        "m.mark(hits=['b/2.png'], queries=[('q.png', 0.5, 0.5)], best=['b/2.png'])\n"
        "m")]), notebook)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "SEMCOPY_PLOTLY_URL"}
    with open(tmp_path / "voila.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "voila", str(notebook), f"--port={port}", "--no-browser"],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
    context = browser_page.context.browser.new_context()
    page = context.new_page()
    try:
        wait_listening(proc, port, tmp_path / "voila.log")
        page.goto(f"http://127.0.0.1:{port}/", timeout=120_000)
        page.wait_for_function("() => (document.querySelector('div.semcopy-map')?.data || []).some(t => t.name === 'query')",
                               timeout=120_000)
        names = page.evaluate("() => document.querySelector('div.semcopy-map').data.map(t => t.name)")
        assert names == ["a", "b", "hits", "first hit", "query"]
        assert page.locator("div.semcopy-map .main-svg").count() >= 1
    finally:
        context.close()
        proc.terminate()
        proc.wait(timeout=30)
