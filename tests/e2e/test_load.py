"""Load: 8 browser sessions searching at once while `semcopy index add` writes 200 images to the same
index. Slow (minutes): `make load` runs it and writes .cache/load-report.json; `make test` does not."""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from .test_dashboard import CHROMIUM, FLAGS, start_serve

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SESSIONS, SEARCHES, WRITES = 8, 10, 200
REPORT = Path(__file__).resolve().parents[2] / ".cache" / "load-report.json"


#: In the page: the time of the last click and of each run counter's first appearance (after that run's
#: hits were drawn). Playwright's own waits poll (up to 0.5 s late), so its clock would add to each latency.
_CLOCK = """() => {
  window.scDone = {}; window.scClick = 0;
  document.addEventListener("click", () => { window.scClick = performance.now(); }, true);
  new MutationObserver(() => {
    const mark = document.querySelector(".semcopy-done");
    if (mark && !(mark.dataset.run in window.scDone)) window.scDone[mark.dataset.run] = performance.now();
  }).observe(document.body, {subtree: true, childList: true, attributes: true});
}"""


async def _session(browser, url: str, queries: list[Path], timeout_ms: int) -> dict:
    """One browser session: open the page, then upload and search each query in turn."""
    context = await browser.new_context(viewport={"width": 1300, "height": 1000})
    page = await context.new_page()
    latencies, errors = [], []
    try:
        await page.goto(url, timeout=timeout_ms)
        await page.get_by_role("button", name="Search").wait_for(timeout=timeout_ms)
        await page.evaluate(_CLOCK)
        for run, query in enumerate(queries, start=1):
            async with page.expect_file_chooser() as chooser:
                await page.locator("button.widget-upload").click()
            await (await chooser.value).set_files(str(query))
            # the search starts once the kernel has the file (before, it would search the one before)
            await page.locator(f'.semcopy-chosen[data-names="{query.name}"]').wait_for(state="attached", timeout=timeout_ms)
            await page.get_by_role("button", name="Search").click()
            await page.locator(f'.semcopy-done[data-run="{run}"]').wait_for(state="attached", timeout=timeout_ms)
            latencies.append(await page.evaluate(f"() => (window.scDone['{run}'] - window.scClick) / 1000"))
            if await page.locator(".semcopy-error").count():
                errors.append(await page.locator(".semcopy-error").first.inner_text())
            elif not await page.locator(".semcopy-hit").count():
                errors.append(f"{query.name}: no hits shown")
    except Exception as exc:  # noqa: BLE001 - a session that breaks is an error to count, not a crash
        errors.append(f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
    finally:
        await context.close()
    return {"latencies": latencies, "errors": errors}


async def _sessions(url: str, queries: list[list[Path]], timeout_ms: int = 300_000) -> list[dict]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            return await asyncio.gather(*(_session(browser, url, q, timeout_ms) for q in queries))
        finally:
            await browser.close()


def test_eight_sessions_search_while_a_writer_adds_200_images(gallery_dir, tmp_path):
    from semcopy_lib.app import build_index
    from semcopy_lib.data import compose, load_image
    from semcopy_lib.index import GalleryIndex

    index_dir = tmp_path / "idx"
    build_index(gallery_dir, index_dir, progress=False)
    rng = random.Random(0)
    new = tmp_path / "new" / "added"
    new.mkdir(parents=True)
    for i in range(WRITES):
        compose.random_picture(rng, (320, 240)).save(new / f"n{i:03d}.png")
    # each session searches screenshots of gallery images (regions, pixel checks: the full pipeline)
    gallery = sorted(gallery_dir.rglob("*.png"))
    queries = []
    for s in range(SESSIONS):
        mine = []
        for i in range(SEARCHES):
            page, _ = compose.page(load_image(rng.choice(gallery)), rng)
            mine.append(tmp_path / f"s{s}-q{i}.png")
            page.save(mine[-1])
        queries.append(mine)
    before = len(GalleryIndex.open(index_dir, read_only=True))
    proc, port = start_serve(index_dir, tmp_path / "serve.log")
    try:
        writer = subprocess.Popen([sys.executable, "-m", "semcopy_lib", "index", "add", "--index", str(index_dir),
                                   str(new)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        start = time.perf_counter()
        sessions = asyncio.run(_sessions(f"http://127.0.0.1:{port}/", queries))
        wall = time.perf_counter() - start
        written = writer.communicate(timeout=900)[0]
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert writer.returncode == 0, written[-2000:]
    index = GalleryIndex.open(index_dir, read_only=True)
    per_image = Counter(r.gallery_id for r in index.records())  # one row per vector (the encoder's views)
    ids = set(per_image)
    verify = subprocess.run([sys.executable, "-m", "semcopy_lib", "index", "verify", "--index", str(index_dir)],
                            capture_output=True, text=True, timeout=600)
    every = [x for s in sessions for x in s["latencies"]]
    report = {
        "sessions": SESSIONS, "searches_each": SEARCHES, "writer_images": WRITES, "wall_s": round(wall, 1),
        "errors": sum(len(s["errors"]) for s in sessions), "error_lines": [e for s in sessions for e in s["errors"]][:20],
        "p50_s": round(statistics.median(every), 2) if every else None,
        "p95_s": round(float(np.percentile(every, 95)), 2) if every else None,
        "slowest_s": [round(x, 2) for x in sorted(every)[-5:]],
        "per_session": [{"p50_s": round(statistics.median(s["latencies"]), 2),
                         "p95_s": round(float(np.percentile(s["latencies"], 95)), 2), "errors": len(s["errors"]),
                         "each_s": [round(x, 2) for x in s["latencies"]]}
                        for s in sessions if s["latencies"]],
        "images_before": before, "images_after": len(index), "verify_exit": verify.returncode,
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    assert report["errors"] == 0, report["error_lines"]
    assert len(every) == SESSIONS * SEARCHES
    assert len(index) == len(ids) == before + WRITES  # none lost
    assert len(set(per_image.values())) == 1  # none twice: every image has the same number of vectors
    assert {f"added/n{i:03d}.png" for i in range(WRITES)} <= ids
    assert verify.returncode == 0, verify.stdout + verify.stderr
