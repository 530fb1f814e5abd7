"""The upload-and-search app (ipywidgets, served by Voila): what the query is, what matched and why.

The widgets only wire a search service to the page: under ``semcopy serve`` the one shared by every
session (:class:`~semcopy_lib.app.remote.RemoteSearchService`: the kernel loads neither torch nor the
model), else a :class:`~semcopy_lib.app.SearchService` of its own. Verdicts, the hits ZIP/CSV and the
gallery map come from ``semcopy_lib.app``.
"""

from __future__ import annotations

import base64
import html
import os
import time

import ipywidgets as w
import numpy as np

from semcopy_lib.app.dedup import report_html
from semcopy_lib.app.export import hits_zip
from semcopy_lib.app.gallery_map import GalleryMap
from semcopy_lib.app.remote import MAX_FILES, MAX_UPLOAD_BYTES, SERVICE_ENV, RemoteSearchService
from semcopy_lib.app.results import QueryResult, SearchHit, verdict
from semcopy_lib.dashboard.map_view import MapWidget
from semcopy_lib.app.overlay import draw_understanding, region_labels
from semcopy_lib.app.images import ImageLoadError, data_uri, file_crop, file_thumb, load_image

INDEX_ENV = "SEMCOPY_INDEX"
#: Thresholds when the encoder has measured none (cosine).
FALLBACK_COPY, FALLBACK_SUBJECT = 0.8, 0.6
#: A query is drawn on the map at the mean of its first hits, weighted exp((score - best) / scale).
MAP_PLACE_HITS, MAP_PLACE_SCALE = 5, 0.05
#: An uploaded query is decoded for its drawing shrunk by a whole factor to between this and twice this
#: (a JPEG by its DCT): the overlay is 480 px and region crops 96 px; a full decode costs time and memory
#: for nothing.
VIEW_SIDE = 1024

_CSS = """
<style>
.sc-grid { display: grid; grid-template-columns: repeat(auto-fill, 190px); gap: 8px; }
.semcopy-hit { width: 180px; box-sizing: border-box; border: 1px solid #ddd; border-radius: 6px; padding: 6px; background: #fff; font-size: 12px; }
.semcopy-hit img.sc-thumb { display: block; margin: 0 auto 4px auto; max-width: 160px; max-height: 140px; }
.semcopy-hit .sc-none { width: 160px; height: 90px; margin: 0 auto 4px auto; display: flex; align-items: center; justify-content: center; background: #eee; color: #777; }
.semcopy-hit .sc-id { font-family: monospace; word-break: break-all; }
.semcopy-hit .sc-score { font-weight: bold; }
.semcopy-hit .sc-why { display: flex; align-items: center; gap: 4px; color: #555; margin-top: 3px; }
.semcopy-hit .sc-why img { max-width: 48px; max-height: 40px; border: 1px solid #ccc; }
.sc-badge { display: inline-block; padding: 0 6px; border-radius: 8px; color: #fff; font-size: 11px; margin-left: 4px; }
.sc-badge.copy { background: #1b8a3a; } .sc-badge.same-subject { background: #d9822b; } .sc-badge.weak { background: #888; }
.semcopy-error { color: #b00020; }
.semcopy-group h4 { margin: 8px 0 4px 0; }
</style>
"""


def hit_card(rank: int, hit: SearchHit, badge: str, region_name: str, region_thumb: str) -> str:
    """One result as HTML (CSS class ``semcopy-hit``): thumbnail, gallery id, class, score (3 decimals),
    verdict badge, and the query region that matched."""
    css = badge.replace(" ", "-")
    thumb = file_thumb(hit.source)  # "" when the file cannot be read, or is too large to decode quickly
    picture = (f'<img class="sc-thumb" src="{thumb}" alt="{html.escape(hit.gallery_id)}"/>' if thumb
               else '<div class="sc-thumb sc-none">no preview</div>')
    return (
        f'<div class="semcopy-hit">{picture}'
        f'<div class="sc-id">#{rank} {html.escape(hit.gallery_id)}</div>'
        f'<div>class: {html.escape(hit.label or "-")}</div>'
        f'<div><span class="sc-score">score {hit.score:.3f}</span><span class="sc-badge {css}">{badge}</span></div>'
        f'<div class="sc-why">matched: <img src="{region_thumb}"/> {html.escape(region_name)}</div></div>'
    )


def _upload_size(entry: dict) -> int:
    """Bytes of one ``FileUpload.value`` entry: under `semcopy serve` a file over the cap arrives empty,
    with its size (serve.UPLOAD_GUARD)."""
    return max(len(entry["content"]), int(entry.get("size") or 0))


class SearchApp:
    """Widgets wired to a search service (a :class:`~semcopy_lib.app.SearchService` or the shared
    :class:`~semcopy_lib.app.remote.RemoteSearchService`); ``app.widget`` is what the notebook displays."""

    def __init__(self, service):
        self.service = service
        enc = service.encoder
        facts = service.describe()
        self.header = w.HTML()
        self.upload = w.FileUpload(accept="image/*", multiple=True, description="Upload")
        self.button = w.Button(description="Search", button_style="primary", icon="search")
        self.k = w.IntSlider(value=10, min=1, max=50, description="k")
        self.encoder = w.Dropdown(options=facts["encoders"], value=enc.name, description="encoder")
        style = {"description_width": "initial"}
        self.copy = w.FloatSlider(value=enc.copy_score or FALLBACK_COPY, min=0.0, max=1.0, step=0.001,
                                  readout_format=".3f", description="copy ≥", style=style)
        self.subject = w.FloatSlider(value=enc.subject_score or FALLBACK_SUBJECT, min=0.0, max=1.0, step=0.001,
                                     readout_format=".3f", description="same subject ≥", style=style)
        has_detector = bool(facts["detector"])
        self.objects = w.Checkbox(value=has_detector, disabled=not has_detector, indent=False,
                                  description="key objects (YOLO)" if has_detector else "key objects: no YOLO weights")
        self.progress = w.IntProgress(value=0, min=0, max=3, bar_style="info", layout=w.Layout(visibility="hidden"))
        self.status = w.HTML()
        self.chosen = w.HTML()  # the files that reached the kernel, named (tests wait for them)
        self.finished = w.HTML()  # <span class="semcopy-done" data-run="N">: N actions finished (for tests)
        self._runs = 0
        self.results = w.HTML()
        self.map = MapWidget()
        self.map_error = w.HTML()
        self.new_class = w.Text(placeholder="class name, e.g. animals/cats", description="class")
        self.add_button = w.Button(description="Add to gallery", icon="plus")
        self.zip_button = w.Button(description="Download hits (ZIP)", icon="download", disabled=True)
        self.zip_link = w.HTML()
        # the Duplicates view: the gallery's groups of copies at a threshold (nothing is deleted here)
        self.dup_threshold = w.FloatSlider(value=enc.copy_score or FALLBACK_COPY, min=0.3, max=1.0, step=0.005,
                                           readout_format=".3f", description="copies from", style=style)
        self.dup_button = w.Button(description="Find duplicates", icon="clone")
        self.dup_status = w.HTML()
        self.dup_groups = w.HTML()
        self.dup_button.on_click(lambda _: self.find_duplicates())

        self.button.on_click(lambda _: self.run())
        self.upload.observe(self._chosen, names="value")
        self.add_button.on_click(lambda _: self.add())
        self.zip_button.on_click(lambda _: self.make_zip())
        self.encoder.observe(self._encoder_changed, names="value")
        for slider in (self.copy, self.subject, self.objects):
            slider.observe(lambda _: self._render(), names="value")

        self._results: list[QueryResult] = []
        self._images: dict[str, object] = {}
        self._map: GalleryMap | None = None
        self._refresh_header(facts)
        self.widget = w.VBox([
            self.header,
            w.HBox([self.upload, self.button, self.k, self.encoder]),
            w.HBox([self.copy, self.subject, self.objects]),
            w.HBox([self.progress, self.chosen, self.status, self.finished]),
            self.results,
            w.HBox([self.zip_button, self.zip_link]),
            w.HBox([self.new_class, self.add_button]),
            self.map_error,
            self.map,
            w.HTML("<h3>Duplicates in the gallery</h3>"),
            w.HBox([self.dup_threshold, self.dup_button, self.dup_status]),
            self.dup_groups,
        ])
        self._show_map()

    @classmethod
    def from_env(cls) -> "SearchApp":
        """The app on the shared service at ``$SEMCOPY_SERVICE`` (what ``semcopy serve`` sets), else on
        a service of its own over the index named by ``$SEMCOPY_INDEX``, with key objects when YOLO
        weights are present."""
        if os.environ.get(SERVICE_ENV):
            return cls(RemoteSearchService(os.environ[SERVICE_ENV]))
        from semcopy_lib.app.service import SearchService

        index_dir = os.environ.get(INDEX_ENV)
        if not index_dir:
            raise RuntimeError(f"set {INDEX_ENV} to an index directory (semcopy serve --index DIR does)")
        return cls(SearchService.with_objects(index_dir))

    # -- actions -------------------------------------------------------------------------------
    def run(self) -> None:
        """Search every uploaded file and show what was understood, the hits per region, and the map."""
        files = self._uploads()
        if not files:
            self._mark_done()
            return
        start = time.perf_counter()
        self._busy(f"Searching {len(files)} image(s)…")
        try:
            results = self.service.search([c for _, c in files], k=self.k.value, names=[n for n, _ in files])
            self.progress.value = 2
            self._images = {}
            for (name, content), result in zip(files, results):
                if not result.error:
                    try:
                        self._images[name] = load_image(content, name=name, max_side=VIEW_SIDE, coarse=True)
                    except ImageLoadError:
                        pass
            self._results = results
            self._render()
            self._show_map()
            errors = [r.error for r in results if r.error]
            done = f"{len(results) - len(errors)} of {len(results)} searched in {time.perf_counter() - start:.1f} s."
            self._say(" ".join(errors + [done]), error=bool(errors))
            self.zip_button.disabled = not any(r.hits for r in results)
            self.zip_link.value = ""
        except Exception as exc:  # a message in the page, never a traceback
            self._say(f"Search failed: {' '.join(str(exc).split())}", error=True)
        finally:
            self._idle()

    def add(self) -> None:
        """Add the uploaded image(s) to the gallery under the typed class, without a rebuild."""
        label = self.new_class.value.strip().strip("/")
        if not label:
            self._say("Type a class name (letters, digits, - and _, folders with /) before adding.", error=True)
            self._mark_done()
            return
        files = self._uploads()
        if not files:
            self._mark_done()
            return
        self._busy(f"Adding {len(files)} image(s) to {label}…")
        added, failed = [], []
        try:
            for name, content in files:  # each file's outcome: one that fails does not hide the others
                try:
                    added.append(self.service.add_upload(content, name, label))
                except Exception as exc:  # noqa: BLE001 - said in the page, the next file still goes in
                    failed.append(f"{name}: {' '.join(str(exc).split())} (not added)")
            said = failed + ([f"Added {', '.join(added)}."] if added else [])
            if added:
                facts = self._refresh_header()
                self._show_map(gallery_changed=True)
                said.append(f"The gallery now holds {facts['count']} images.")
            self._say(" ".join(said), error=bool(failed))
        except Exception as exc:
            self._say(" ".join(failed + [f"Added {', '.join(added)}." if added else "",
                                         f"Adding failed: {' '.join(str(exc).split())}"]).strip(), error=True)
        finally:
            self._idle()

    def find_duplicates(self) -> None:
        """Show the gallery's groups of copies at the slider's threshold, largest first, and offer the
        report (HTML with thumbnails) for download."""
        self._busy("Looking for copies in the gallery…")
        try:
            found = self.service.duplicates(self.dup_threshold.value)
            groups = found["groups"]
            page = report_html(found["html"], f"semcopy: copies from {found['threshold']:.3f}")
            uri = "data:text/html;base64," + base64.b64encode(page.encode("utf-8")).decode("ascii")
            extra = sum(g["size"] - 1 for g in groups)
            self.dup_status.value = (f'<span class="semcopy-dups">{len(groups)} group(s), {extra} image(s) besides '
                                     f'their keepers</span> · <a download="semcopy-duplicates.html" href="{uri}">'
                                     "download the report</a>")
            self.dup_groups.value = (f'<div style="max-height:600px;overflow:auto">{found["html"]}</div>' if groups
                                     else "<p>No copies at this threshold.</p>")
            self._say("")
        except Exception as exc:  # a message in the page, never a traceback
            self._say(f"Finding duplicates failed: {' '.join(str(exc).split())}", error=True)
        finally:
            self._idle()

    def make_zip(self) -> None:
        """Offer the hits as a ZIP of images plus ``hits.csv`` (query, rank, id, score, verdict)."""
        data = hits_zip(self._results, self.copy.value, self.subject.value)
        uri = "data:application/zip;base64," + base64.b64encode(data).decode("ascii")
        self.zip_link.value = (f'<a class="semcopy-zip" download="semcopy-hits.zip" href="{uri}">'
                               f"semcopy-hits.zip ({len(data) / 1024:.0f} KB): click to save</a>")

    # -- rendering -----------------------------------------------------------------------------
    def _render(self) -> None:
        # one HTML value for every result: a single message, where a widget per card made three models each
        self.results.value = "".join(self._result_view(r) for r in self._results)

    def _result_view(self, result: QueryResult) -> str:
        if result.error:
            return f'<p class="semcopy-error">{html.escape(result.error)}</p>'
        image = self._images.get(result.query)
        names = region_labels(result)
        understood = data_uri(draw_understanding(image, result, self.objects.value), 480) if image else ""
        parts = [f"layout <b>{html.escape(result.layout)}</b>"]
        kinds = [r.kind for r in result.regions if r.kind not in ("whole", "window")]
        if kinds:
            parts.append(", ".join(f"{kinds.count(k)} {k}{'s' if kinds.count(k) > 1 else ''}" for k in dict.fromkeys(kinds)))
        if result.objects and self.objects.value:
            parts.append("key objects: " + ", ".join(html.escape(o.label) for o in result.objects[:8]))
        views = [f'<h3>{html.escape(result.query)}</h3><img src="{understood}" style="max-width:480px"/>'
                 f"<p>Understood as: {'; '.join(parts)}. {len(result.hits)} hit(s).</p>"]
        # hits grouped by the query region they came from, best region first
        groups: dict[tuple, list[tuple[int, SearchHit]]] = {}
        for rank, hit in enumerate(result.hits, 1):
            groups.setdefault((hit.query_box, hit.region_kind), []).append((rank, hit))
        if len(groups) > 1:
            # a composite (or a page, a collage) has several sources: the best hit of each region, up front
            best = [f"#{hits[0][0]} <code>{html.escape(hits[0][1].gallery_id)}</code> in {html.escape(names.get(key, key[1]))}"
                    for key, hits in groups.items()]
            views.append(f'<p class="semcopy-sources">Best hit per region: {" · ".join(best)}</p>')
        for (box, kind), hits in groups.items():
            name = names.get((box, kind), kind)
            region_thumb = data_uri(file_crop(image, box), 96) if image else ""
            cards = "".join(hit_card(rank, hit, verdict(hit.score, self.copy.value, self.subject.value), name, region_thumb)
                            for rank, hit in hits)
            views.append(f'<div class="semcopy-group"><h4><img src="{region_thumb}" style="max-height:48px;'
                         f'vertical-align:middle"/> matched in {html.escape(name)}</h4>'
                         f'<div class="sc-grid">{cards}</div></div>')
        return "".join(views)

    def _show_map(self, gallery_changed: bool = False) -> None:
        """Mark the current results on the map; the gallery's points are read and sent again only when
        the gallery changed."""
        try:
            if self._map is None or gallery_changed:
                self._map = self.service.gallery_map()
                self.map.show(self._map)
                self.map_error.value = ""
        except Exception as exc:
            self.map_error.value = f'<p class="semcopy-error">No gallery map: {html.escape(" ".join(str(exc).split()))}</p>'
            return
        hits, best, queries = [], [], []
        where = {g: i for i, g in enumerate(self._map.ids)}
        for result in self._results:
            top = [h for h in result.hits if h.gallery_id in where][:MAP_PLACE_HITS]
            hits += [h.gallery_id for h in result.hits]
            if top:  # a query sits where its best hits are (a hit 0.05 below the first weighs e^-1 as much)
                best.append(top[0].gallery_id)
                xy = self._map.xy[[where[h.gallery_id] for h in top]]
                weights = np.exp([(h.score - top[0].score) / MAP_PLACE_SCALE for h in top])
                x, y = (xy * weights[:, None]).sum(0) / weights.sum()
                queries.append((result.query, float(x), float(y)))
        self.map.mark(hits, queries, best)

    # -- helpers -------------------------------------------------------------------------------
    def _uploads(self) -> list[tuple[str, bytes]]:
        files = [(f["name"], bytes(f["content"]), _upload_size(f)) for f in self.upload.value]
        if not files:
            self._say("Choose an image with Upload first.", error=True)
            return []
        if len(files) > MAX_FILES:
            self._say(f"Choose at most {MAX_FILES} images at a time ({len(files)} chosen).", error=True)
            return []
        big = [f"{n}: too big ({size / 2**20:.1f} MB > {MAX_UPLOAD_BYTES / 2**20:.0f} MB)"
               for n, _, size in files if size > MAX_UPLOAD_BYTES]
        if big:
            self._say("; ".join(big), error=True)
            return []
        return [(n, c) for n, c, _ in files]

    def _refresh_header(self, facts: dict | None = None) -> dict:
        facts = facts or self.service.describe()
        self.header.value = (
            _CSS + f"<h2>semcopy: find semantic copies</h2><p>Gallery: {facts['count']} images, "
            f"encoder <code>{html.escape(facts['encoder'])}</code>. Upload an image "
            "(a photo, a drawing, a screenshot or a collage) and press Search.</p>"
        )
        return facts

    def _chosen(self, change) -> None:
        """Say which files arrived (a big one takes a moment to reach the kernel: Search before that
        would search the files chosen before); the names ride on a marker that tests wait for."""
        files = list(change["new"])
        if not files:
            return
        size = sum(_upload_size(f) for f in files) / 2**20
        names = ", ".join(f["name"] for f in files)
        self.chosen.value = (f'<p class="semcopy-chosen" data-names="{html.escape(names)}" style="margin-right: 1em">'
                             f"chosen: {html.escape(names)} ({size:.1f} MB)</p>")

    def _encoder_changed(self, change) -> None:
        if change["new"] != self.service.encoder.name:
            self._say(f"This gallery was indexed with {self.service.encoder.name}; to search with {change['new']}, "
                      f"build an index with `semcopy index build DIR --encoder {change['new']}` and serve it.", error=True)
            self.encoder.value = self.service.encoder.name

    def _busy(self, text: str) -> None:
        self.button.disabled = self.add_button.disabled = True
        self.progress.value, self.progress.layout.visibility = 1, "visible"
        self._say(text)

    def _idle(self) -> None:
        self.progress.value = 3
        self.progress.layout.visibility = "hidden"
        self.button.disabled = self.add_button.disabled = False
        self._mark_done()

    def _mark_done(self) -> None:
        """Count one more finished action, refused ones too (tests wait for the count)."""
        self._runs += 1
        self.finished.value = f'<span class="semcopy-done" data-run="{self._runs}"></span>'

    def _say(self, text: str, error: bool = False) -> None:
        cls = ' class="semcopy-error"' if error else ""
        self.status.value = f"<p{cls}>{html.escape(text)}</p>"
