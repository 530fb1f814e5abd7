"""Real web-page screenshots for benchmarks: HTML rendered by headless Chromium (Playwright).

``render_pages(images, seed)`` puts each picture in a generated page (themes, fonts, sidebars, floats,
figure frames, card grids, articles, product pages, social feeds, landing pages, infoboxes) and
returns the screenshot with the picture's box as the browser laid it out. Needs Debian's ``chromium``
(``apt-get install chromium``) and the ``playwright`` package; Playwright's own browser download is
not used.
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


FONTS = ["sans-serif", "Georgia, serif", "Verdana, sans-serif", "'Courier New', monospace", "system-ui"]


def _gradient(rng: random.Random, style: str) -> str:
    """A block of random gradient (a stand-in picture that matches no gallery image)."""
    return (f"<div style='{style}background:linear-gradient({rng.randrange(360)}deg,#{rng.randrange(16**6):06x},"
            f"#{rng.randrange(16**6):06x})'></div>")


def _site_page(src: str, rng: random.Random, bg: str, fg: str, nav: str) -> str:
    """Nav bar, optional sidebar, and a float figure, a card grid or a hero picture in the main column."""
    width = rng.randint(240, 480)
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
                     _gradient(rng, "height:140px;"))
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
    return (f"<nav style='background:{nav};color:white;padding:18px 32px;font-size:18px'>Gallery &nbsp; Search &nbsp; About</nav>"
            f"<div style='display:flex'>{sidebar}<main style='flex:1;padding:24px'><h1>Semantic copies</h1>{body}</main></div>")


def _app_page(src: str, rng: random.Random, bg: str, fg: str, nav: str) -> str:
    """A header, then a news article with a related-stories rail, a product page, a social feed, a
    landing page whose picture stands on a gradient, a wiki article with an infobox, or a picture grid."""
    dark = int(bg[1:3], 16) < 128
    panel = "#242526" if dark else "#ffffff"
    radius = rng.choice([0, 0, 8, 16])
    accent = f"#{rng.randrange(16**6):06x}"
    layout = rng.choice(["news", "product", "social", "landing", "wiki", "gallery"])
    if layout == "news":
        related = "".join(f"<div style='display:flex;gap:8px;margin-bottom:14px'>{_gradient(rng, 'width:80px;height:60px;flex:none;')}"
                          f"<span style='font-size:13px'>Related story {i}: {LOREM[:60]}</span></div>" for i in range(4))
        body = (f"<div style='display:flex;gap:32px;padding:20px 40px'><article style='flex:1;max-width:760px'>"
                f"<h1>A semantic copy was found</h1><p style='color:gray'>By A. Writer</p>"
                f"<img id='target' src='{src}' style='width:{rng.randint(60, 100)}%;border-radius:{radius}px'>"
                f"<p style='font-size:12px;color:gray'>Photo: archive</p><p>{LOREM * 4}</p></article>"
                f"<aside style='width:300px'><h3>Related</h3>{related}</aside></div>")
    elif layout == "product":
        mat = rng.choice(["#f3f3f3", "#ffffff", "#e9eef5", "transparent"])
        body = (f"<div style='display:flex;gap:40px;padding:40px'><div style='background:{mat};padding:{rng.choice([0, 12, 24])}px;"
                f"border-radius:{radius}px'><img id='target' src='{src}' style='width:{rng.randint(300, 460)}px;display:block'></div>"
                f"<div><h1>Product name</h1><p style='font-size:28px;color:{accent}'>$ {rng.randint(5, 300)}.99</p>"
                f"<button style='background:{accent};color:white;border:0;padding:14px 40px;font-size:18px'>Add to cart</button>"
                f"<p style='max-width:420px'>{LOREM * 2}</p></div></div>")
    elif layout == "social":
        posts = []
        for j in range(2):
            picture = (f"<img id='target' src='{src}' style='width:100%;display:block'>" if j == 0
                       else _gradient(rng, "height:200px;"))
            posts.append(f"<div style='width:500px;margin:16px auto;background:{panel};border-radius:8px;"
                         f"box-shadow:0 1px 3px rgba(0,0,0,.3)'><div style='display:flex;gap:10px;padding:12px;align-items:center'>"
                         f"<div style='width:40px;height:40px;border-radius:50%;background:{accent}'></div><b>User {j}</b></div>"
                         f"<p style='padding:0 12px'>{LOREM[:120]}</p>{picture}"
                         f"<div style='padding:10px 12px;color:gray'>Like &middot; Comment &middot; Share</div></div>")
        body = "".join(posts)
    elif layout == "landing":
        body = (f"<section style='background:linear-gradient({rng.randrange(360)}deg,{accent},{nav});display:flex;"
                f"align-items:center;gap:40px;padding:60px'><div style='flex:1'><h1 style='font-size:48px'>Find every copy</h1>"
                f"<p>{LOREM[:200]}</p><button style='padding:12px 30px;border-radius:30px;border:0'>Start</button></div>"
                f"<img id='target' src='{src}' style='width:{rng.randint(320, 480)}px;border-radius:{radius}px;"
                f"box-shadow:0 10px 30px rgba(0,0,0,.4)'></section><p style='padding:20px 60px'>{LOREM * 2}</p>")
    elif layout == "wiki":
        links = "".join(f"<a style='display:block;color:{accent};font-size:13px'>Link {i}</a>" for i in range(14))
        rows = "".join(f"<tr><th style='text-align:left'>Field {i}</th><td>Value {i}</td></tr>" for i in range(5))
        body = (f"<div style='display:flex'><nav style='width:160px;padding:16px'>{links}</nav><main style='flex:1;padding:16px 24px'>"
                f"<h1 style='font-weight:normal;border-bottom:1px solid #aaa'>Article title</h1>"
                f"<table style='float:right;width:{rng.randint(240, 320)}px;border:1px solid #a2a9b1;"
                f"background:{'#2a2a2a' if dark else '#f8f9fa'};margin:0 0 12px 16px;font-size:13px;padding:4px'>"
                f"<tr><td colspan=2><img id='target' src='{src}' style='width:100%'></td></tr>{rows}</table>"
                f"<p>{LOREM * 6}</p></main></div>")
    else:
        n, cols = rng.choice([6, 8, 12]), rng.choice([3, 4])
        target = rng.randrange(n)
        cells = [(f"<img id='target' src='{src}' style='width:100%;display:block;border-radius:{radius}px'>" if i == target
                  else _gradient(rng, f"height:{rng.randint(120, 220)}px;border-radius:{radius}px;"))
                 + f"<div style='font-size:12px;padding:4px 0'>Picture {i}</div>" for i in range(n)]
        body = (f"<h2 style='padding:0 24px'>Gallery</h2><div style='display:grid;grid-template-columns:repeat({cols},1fr);"
                f"gap:{rng.choice([4, 12, 24])}px;padding:24px'>{''.join(f'<div>{c}</div>' for c in cells)}</div>")
    top = rng.choice([nav, bg])
    header = (f"<header style='display:flex;justify-content:space-between;padding:{rng.choice([10, 16, 24])}px 32px;"
              f"background:{top};color:{'#fff' if top == nav else fg};border-bottom:1px solid rgba(128,128,128,.3)'>"
              f"<b style='font-size:22px'>Site</b><span>Home &middot; News &middot; Shop &middot; Login</span></header>")
    return header + body


#: Page families: a site with a nav bar (:func:`_site_page`), an app layout (:func:`_app_page`).
FAMILIES = ("site", "app")


def page_html(img: Image.Image, rng: random.Random, families: tuple[str, ...] = FAMILIES) -> str:
    """One page around ``img`` (id ``target``), in one of the themes and fonts: a site with a nav bar and
    a figure, card grid or hero picture (:func:`_site_page`) or one of six app layouts (:func:`_app_page`),
    of the ``families`` given (benchmarks tune on one and hold the other out)."""
    bg, fg, nav = rng.choice(THEMES)
    font = rng.choice(FONTS)
    coin = rng.random() < 0.5
    family = families[0] if len(families) == 1 else ("site" if coin else "app")
    body = (_site_page if family == "site" else _app_page)(_data_uri(img), rng, bg, fg, nav)
    return (f"<html><body style='margin:0;background:{bg};color:{fg};font-family:{font}'>{body}</body></html>")


def render_pages(images: Iterable[Image.Image], seed: int = 0, viewport: tuple[int, int] = (1280, 800),
                 families: tuple[str, ...] = FAMILIES) -> Iterator[tuple[Image.Image, Box]]:
    """Screenshot a generated page (of ``families``, :func:`page_html`) around each image; yields
    (screenshot, box of the image)."""
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
                page.set_content(page_html(img, rng, families))
                page.locator("#target").scroll_into_view_if_needed()
                bb = page.locator("#target").bounding_box()
                shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
                x, y = max(0, round(bb["x"])), max(0, round(bb["y"]))
                w = min(shot.width - x, round(bb["width"]))
                h = min(shot.height - y, round(bb["height"]))
                yield shot, (x, y, w, h)
        finally:
            browser.close()
