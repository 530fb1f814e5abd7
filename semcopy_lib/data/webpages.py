"""Real web-page screenshots for benchmarks: HTML rendered by headless Chromium (Playwright).

``render_pages(images, seed)`` puts each picture in a generated page (themes, sidebars, floats,
figure frames, card grids) and returns the screenshot with the picture's box as the browser laid
it out. Needs Debian's ``chromium`` (``apt-get install chromium``) and the ``playwright`` package;
Playwright's own browser download is not used.
"""

from __future__ import annotations

import base64
import io
import random
import shutil
from typing import Iterable, Iterator

from PIL import Image

from semcopy_lib.data.boxes import Box

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
THEMES = [("#ffffff", "#222", "#0d6efd"), ("#121212", "#ddd", "#333"), ("#f5f0e6", "#333", "#8a5a44"),
          ("#0b1e3a", "#e8e8e8", "#1f3b66"), ("#fafafa", "#111", "#2e7d32")]
LOREM = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. Sed do eiusmod tempor incididunt ut labore "
         "et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris. ")


def chromium_path() -> str | None:
    """Debian's Chromium, when installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _data_uri(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def page_html(img: Image.Image, rng: random.Random) -> str:
    """One page around ``img`` (id ``target``): a float figure, a card grid or a hero picture."""
    bg, fg, nav = rng.choice(THEMES)
    src, width = _data_uri(img), rng.randint(240, 480)
    sidebar = ("<aside style='width:200px;padding:20px;background:rgba(128,128,128,.15)'>Menu<br>Photos<br>"
               "Drawings<br>About</aside>") if rng.random() < 0.5 else ""
    style = rng.choice(["", "border:1px solid #888;padding:8px;border-radius:6px;",
                        "box-shadow:0 2px 10px rgba(0,0,0,.35);padding:6px;", "border:3px solid " + nav + ";"])
    layout = rng.choice(["float", "grid", "hero"])
    if layout == "grid":
        cards = []
        target = rng.randrange(6)
        for i in range(6):
            inner = (f"<img id='target' src='{src}' style='width:100%;display:block'>" if i == target else
                     f"<div style='height:140px;background:linear-gradient({rng.randrange(360)}deg,#{rng.randrange(16**6):06x},#{rng.randrange(16**6):06x})'></div>")
            cards.append(f"<div style='{style}'>{inner}<p>Item {i + 1}</p></div>")
        body = f"<div style='display:grid;grid-template-columns:repeat(3,1fr);gap:20px'>{''.join(cards)}</div>"
    elif layout == "hero":
        body = (f"<figure style='margin:0 auto;{style}width:{width + 120}px'><img id='target' src='{src}' "
                f"style='width:100%;display:block'><figcaption>Figure 1</figcaption></figure><p>{LOREM * 3}</p>")
    else:
        side = rng.choice(["left", "right"])
        body = (f"<p>{LOREM * 2}</p><figure style='float:{side};margin:0 24px 12px 24px;{style}'>"
                f"<img id='target' src='{src}' style='width:{width}px;display:block'><figcaption>Figure 1</figcaption>"
                f"</figure><p>{LOREM * 8}</p>")
    return (f"<html><body style='margin:0;background:{bg};color:{fg};font-family:sans-serif'>"
            f"<nav style='background:{nav};color:white;padding:18px 32px;font-size:18px'>Gallery &nbsp; Search &nbsp; About</nav>"
            f"<div style='display:flex'>{sidebar}<main style='flex:1;padding:24px'><h1>Semantic copies</h1>{body}</main></div>"
            "</body></html>")


def render_pages(images: Iterable[Image.Image], seed: int = 0,
                 viewport: tuple[int, int] = (1280, 800)) -> Iterator[tuple[Image.Image, Box]]:
    """Screenshot a generated page around each image; yields (screenshot, box of the image)."""
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    if exe is None:
        raise RuntimeError("Chromium not found: apt-get install chromium")
    rng = random.Random(seed)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        try:
            for img in images:
                page.set_content(page_html(img, rng))
                page.locator("#target").scroll_into_view_if_needed()
                bb = page.locator("#target").bounding_box()
                shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
                x, y = max(0, round(bb["x"])), max(0, round(bb["y"]))
                w = min(shot.width - x, round(bb["width"]))
                h = min(shot.height - y, round(bb["height"]))
                yield shot, (x, y, w, h)
        finally:
            browser.close()
