"""The gallery map: a plotly figure of the gallery's UMAP, and the widget that shows it in the dashboard.

:class:`MapWidget` sends the gallery's points to the page once (again only when the gallery changes),
and plotly.js once (or the page loads it from ``semcopy serve``); a search sends only its rings and
stars (a few kB), which plotly redraws in place.
"""

from __future__ import annotations

import html
import os
from typing import Sequence

import anywidget
import numpy as np
import traitlets

from semcopy_lib.app.gallery_map import GalleryMap

#: Most classes coloured separately; the rest share one grey trace ("other classes").
MAX_LEGEND_CLASSES = 24
#: Set by ``semcopy serve``: the URL of the plotly.js file it serves, relative to Voila's base URL.
PLOTLY_URL_ENV = "SEMCOPY_PLOTLY_URL"


def gallery_traces(gmap: GalleryMap) -> list:
    """One ``Scattergl`` trace of gallery images per class (the biggest :data:`MAX_LEGEND_CLASSES`),
    the rest in one grey trace."""
    import plotly.express as px
    import plotly.graph_objects as go

    palette = px.colors.qualitative.Alphabet
    labels = np.array(gmap.labels)
    classes, counts = np.unique(labels, return_counts=True)
    big = set(classes[np.argsort(-counts)][:MAX_LEGEND_CLASSES])
    traces = []
    for n, name in enumerate(sorted(big) + (["other classes"] if len(classes) > len(big) else [])):
        idx = np.flatnonzero(labels == name) if name in big else np.flatnonzero(~np.isin(labels, list(big)))
        colour = palette[n % len(palette)] if name in big else "lightgrey"
        traces.append(go.Scattergl(
            x=gmap.xy[idx, 0], y=gmap.xy[idx, 1], mode="markers", name=html.escape(name),
            marker=dict(size=7, opacity=0.8, color=colour),
            text=[f"{html.escape(gmap.ids[i])}<br>class: {html.escape(gmap.labels[i])}" for i in idx],
            hoverinfo="text"))
    return traces


def overlay_traces(gmap: GalleryMap, hits: Sequence[str] = (), queries: Sequence[tuple[str, float, float]] = (),
                   best: Sequence[str] = ()) -> list:
    """What a search adds to the map: ``hits`` (gallery ids) ringed, ``best`` (each query's first hit)
    ringed larger, ``queries`` (name, x, y) as stars; traces named ``hits``, ``first hit``, ``query``."""
    import plotly.graph_objects as go

    traces = []
    where = {g: i for i, g in enumerate(gmap.ids)}
    for name, label, ids, size, colour, width in (("hits", "hit", hits, 15, "crimson", 3),
                                                  ("first hit", "first hit", best, 24, "#1b8a3a", 4)):
        rows = [where[g] for g in dict.fromkeys(ids) if g in where]
        if rows:  # rings around those gallery points
            traces.append(go.Scatter(
                x=gmap.xy[rows, 0], y=gmap.xy[rows, 1], mode="markers", name=name,
                marker=dict(size=size, color="rgba(0,0,0,0)", line=dict(color=colour, width=width)),
                text=[f"{label}: {html.escape(gmap.ids[i])}" for i in rows], hoverinfo="text"))
    if queries:
        traces.append(go.Scatter(
            x=[q[1] for q in queries], y=[q[2] for q in queries], mode="markers", name="query",
            marker=dict(size=20, symbol="star", color="gold", line=dict(color="black", width=1.5)),
            text=[f"query: {html.escape(q[0])}" for q in queries], hoverinfo="text"))
    return traces


def map_figure(gmap: GalleryMap, hits: Sequence[str] = (), queries: Sequence[tuple[str, float, float]] = (),
               best: Sequence[str] = ()):
    """A plotly figure: :func:`gallery_traces` under :func:`overlay_traces`."""
    import plotly.graph_objects as go

    fig = go.Figure(gallery_traces(gmap) + overlay_traces(gmap, hits, queries, best))
    fig.update_layout(margin=dict(l=10, r=10, t=30, b=10), height=480, template="plotly_white",
                      title=dict(text=f"Gallery map (UMAP, {len(gmap.ids)} images)", font=dict(size=14)),
                      xaxis=dict(visible=False), yaxis=dict(visible=False), legend=dict(font=dict(size=10)),
                      showlegend=True)
    return fig


_ESM = """
function plotly(model) {
  if (globalThis.Plotly) return Promise.resolve(globalThis.Plotly);
  const url = model.get("plotly_url");
  if (!url) {  // the source came with the widget: a UMD bundle, run once per page, sets window.Plotly
    new Function("module", "define", model.get("_plotly_js"))(undefined, undefined);
    return Promise.resolve(globalThis.Plotly);
  }
  // a file the server serves (relative to Voila's base URL): fetched once, cached by the browser
  globalThis.scPlotly = globalThis.scPlotly || new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = (document.body.dataset.baseUrl || "") + url;
    script.onload = () => resolve(globalThis.Plotly);
    script.onerror = () => reject(new Error("plotly.js not loaded from " + script.src));
    document.head.appendChild(script);
  });
  return globalThis.scPlotly;
}
export default {
  async render({ model, el }) {
    const div = document.createElement("div");
    div.className = "semcopy-map";
    el.appendChild(div);
    const Plotly = await plotly(model);
    const draw = () => {
      const fig = JSON.parse(model.get("figure"));
      if (!fig.data) { Plotly.purge(div); return; }
      Plotly.react(div, fig.data.concat(JSON.parse(model.get("overlay"))), fig.layout, {displaylogo: false});
    };
    draw();
    model.on("change:figure", draw);
    model.on("change:overlay", draw);
    return () => Plotly.purge(div);
  },
};
"""


class MapWidget(anywidget.AnyWidget):
    """The gallery map in the page (CSS class ``semcopy-map``): ``show(gmap)`` when the gallery changes,
    ``mark(...)`` (the arguments of :func:`overlay_traces`) after each search."""

    _esm = traitlets.Unicode(_ESM).tag(sync=True)
    #: where the page loads plotly.js from, relative to Voila's base URL (``semcopy serve`` serves it,
    #: :data:`PLOTLY_URL_ENV`); empty: the bundled plotly.js travels with the widget (4.8 MB, once)
    plotly_url = traitlets.Unicode("").tag(sync=True)
    _plotly_js = traitlets.Unicode("").tag(sync=True)
    #: ``{"data": [...], "layout": {...}}``: the gallery's traces, JSON
    figure = traitlets.Unicode("{}").tag(sync=True)
    #: the search's traces, a JSON list
    overlay = traitlets.Unicode("[]").tag(sync=True)

    def __init__(self, plotly_url: str | None = None, **kwargs):
        from plotly.offline import get_plotlyjs

        plotly_url = os.environ.get(PLOTLY_URL_ENV, "") if plotly_url is None else plotly_url
        super().__init__(plotly_url=plotly_url, _plotly_js="" if plotly_url else get_plotlyjs(), **kwargs)
        self._gmap: GalleryMap | None = None

    def show(self, gmap: GalleryMap) -> None:
        """Draw ``gmap``'s points (and clear the marks)."""
        self._gmap = gmap
        with self.hold_sync():
            self.overlay = "[]"
            self.figure = map_figure(gmap).to_json()

    def mark(self, hits: Sequence[str] = (), queries: Sequence[tuple[str, float, float]] = (),
             best: Sequence[str] = ()) -> None:
        """Ring ``hits`` and ``best`` and star ``queries`` on the map drawn by :meth:`show`."""
        if self._gmap is None:
            return
        from plotly.io.json import to_json_plotly

        self.overlay = to_json_plotly([t.to_plotly_json() for t in overlay_traces(self._gmap, hits, queries, best)])
