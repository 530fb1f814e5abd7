"""The upload-and-search app: an upload, a k slider, a Search button and a grid of scored hits."""

from __future__ import annotations

import html
import os

import ipywidgets as w

from semcopy_lib.app import QueryResult, SearchService
from semcopy_lib.dashboard.thumbs import data_uri, file_thumb
from semcopy_lib.data import load_image, ImageLoadError

INDEX_ENV = "SEMCOPY_INDEX"

_CSS = """
<style>
.semcopy-hit { border: 1px solid #ddd; border-radius: 6px; padding: 6px; background: #fff; }
.semcopy-hit img { display: block; margin: 0 auto 4px auto; max-width: 160px; max-height: 160px; }
.semcopy-hit .sc-id { font-family: monospace; font-size: 12px; word-break: break-all; }
.semcopy-hit .sc-score { font-weight: bold; }
.semcopy-error { color: #b00020; }
</style>
"""


def hit_card(rank: int, gallery_id: str, label: str, score: float, thumb: str) -> w.HTML:
    """One result: thumbnail, gallery id, class and score (3 decimals); CSS class ``semcopy-hit``."""
    card = w.HTML(
        f'<img src="{thumb}" alt="{html.escape(gallery_id)}"/>'
        f'<div class="sc-id">#{rank} {html.escape(gallery_id)}</div>'
        f'<div>class: {html.escape(label or "-")}</div>'
        f'<div class="sc-score">score {score:.3f}</div>',
        layout=w.Layout(width="180px"),
    )
    card.add_class("semcopy-hit")
    return card


class SearchApp:
    """Widgets wired to a :class:`SearchService`; ``app.widget`` is what the notebook displays."""

    def __init__(self, service: SearchService):
        self.service = service
        info = service.index.info()
        self.header = w.HTML(
            _CSS + f"<h2>semcopy: find semantic copies</h2><p>Gallery: {info['count']} images, "
            f"encoder <code>{html.escape(info['encoder'])}</code>. Upload an image and press Search.</p>"
        )
        self.upload = w.FileUpload(accept="image/*", multiple=True, description="Upload")
        self.k = w.IntSlider(value=10, min=1, max=50, description="k")
        self.button = w.Button(description="Search", button_style="primary", icon="search")
        self.status = w.HTML()
        self.results = w.VBox()
        self.button.on_click(lambda _: self.run())
        self.widget = w.VBox([self.header, w.HBox([self.upload, self.k, self.button]), self.status, self.results])

    @classmethod
    def from_env(cls) -> "SearchApp":
        """The app over the index named by ``$SEMCOPY_INDEX`` (what ``semcopy serve`` sets)."""
        index_dir = os.environ.get(INDEX_ENV)
        if not index_dir:
            raise RuntimeError(f"set {INDEX_ENV} to an index directory (semcopy serve --index DIR does)")
        return cls(SearchService(index_dir))

    def _say(self, text: str, error: bool = False) -> None:
        cls = ' class="semcopy-error"' if error else ""
        self.status.value = f"<p{cls}>{html.escape(text)}</p>"

    def run(self) -> None:
        """Search every uploaded file and show the hits."""
        files = list(self.upload.value)
        if not files:
            self._say("Choose an image with Upload first.", error=True)
            return
        self._say(f"Searching {len(files)} image(s)...")
        self.button.disabled = True
        try:
            names = [f["name"] for f in files]
            results = self.service.search([bytes(f["content"]) for f in files], k=self.k.value, names=names)
            self.results.children = [self._result_view(r, bytes(f["content"])) for r, f in zip(results, files)]
            errors = [r.error for r in results if r.error]
            self._say("; ".join(errors), error=True) if errors else self._say(f"Done: {len(results)} query(ies).")
        except Exception as exc:  # a message in the page, never a traceback
            self._say(f"Search failed: {' '.join(str(exc).split())}", error=True)
        finally:
            self.button.disabled = False

    def _result_view(self, result: QueryResult, content: bytes) -> w.Widget:
        if result.error:
            return w.HTML(f'<p class="semcopy-error">{html.escape(result.error)}</p>')
        try:
            query_img = data_uri(load_image(content, name=result.query), 200)
        except ImageLoadError:
            query_img = ""
        head = w.HTML(
            f'<h3>{html.escape(result.query)}</h3><img src="{query_img}" style="max-height:200px"/>'
            f"<p>layout: {result.layout}; {len(result.hits)} hit(s)</p>"
        )
        cards = [hit_card(i, h.gallery_id, h.label, h.score, file_thumb(h.source)) for i, h in enumerate(result.hits, 1)]
        grid = w.GridBox(cards, layout=w.Layout(grid_template_columns="repeat(auto-fill, 190px)", grid_gap="8px"))
        return w.VBox([head, grid])
