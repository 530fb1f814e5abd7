"""The gallery map as a self-contained plotly page (shown in an iframe: works offline, no extension)."""

from __future__ import annotations

import html
from typing import Sequence

import numpy as np

from semcopy_lib.app.gallery_map import GalleryMap

#: Most classes coloured separately; the rest share one grey trace ("other classes").
MAX_LEGEND_CLASSES = 24


def map_figure(gmap: GalleryMap, hits: Sequence[str] = (), queries: Sequence[tuple[str, float, float]] = (),
               best: Sequence[str] = ()):
    """A plotly figure: gallery images by class; ``hits`` (gallery ids) ringed, ``best`` (each query's
    first hit) ringed larger; ``queries`` (name, x, y) as stars."""
    import plotly.express as px
    import plotly.graph_objects as go

    palette = px.colors.qualitative.Alphabet
    fig = go.Figure()
    labels = np.array(gmap.labels)
    classes, counts = np.unique(labels, return_counts=True)
    big = set(classes[np.argsort(-counts)][:MAX_LEGEND_CLASSES])
    for n, name in enumerate(sorted(big) + (["other classes"] if len(classes) > len(big) else [])):
        idx = np.flatnonzero(labels == name) if name in big else np.flatnonzero(~np.isin(labels, list(big)))
        colour = palette[n % len(palette)] if name in big else "lightgrey"
        fig.add_trace(go.Scattergl(
            x=gmap.xy[idx, 0], y=gmap.xy[idx, 1], mode="markers", name=name,
            marker=dict(size=7, opacity=0.8, color=colour),
            text=[f"{gmap.ids[i]}<br>class: {gmap.labels[i]}" for i in idx], hoverinfo="text"))
    where = {g: i for i, g in enumerate(gmap.ids)}
    for name, label, ids, size, colour, width in (("hits", "hit", hits, 15, "crimson", 3),
                                                  ("first hit", "first hit", best, 24, "#1b8a3a", 4)):
        rows = [where[g] for g in dict.fromkeys(ids) if g in where]
        if rows:  # rings around those gallery points
            fig.add_trace(go.Scatter(
                x=gmap.xy[rows, 0], y=gmap.xy[rows, 1], mode="markers", name=name,
                marker=dict(size=size, color="rgba(0,0,0,0)", line=dict(color=colour, width=width)),
                text=[f"{label}: {gmap.ids[i]}" for i in rows], hoverinfo="text"))
    if queries:
        fig.add_trace(go.Scatter(
            x=[q[1] for q in queries], y=[q[2] for q in queries], mode="markers", name="query",
            marker=dict(size=20, symbol="star", color="gold", line=dict(color="black", width=1.5)),
            text=[f"query: {q[0]}" for q in queries], hoverinfo="text"))
    fig.update_layout(margin=dict(l=10, r=10, t=30, b=10), height=480, template="plotly_white",
                      title=dict(text=f"Gallery map (UMAP, {len(gmap.ids)} images)", font=dict(size=14)),
                      xaxis=dict(visible=False), yaxis=dict(visible=False), legend=dict(font=dict(size=10)))
    return fig


def map_iframe(fig, height: int = 500) -> str:
    """The figure as an ``<iframe srcdoc>`` holding plotly.js inline (no network, no notebook extension)."""
    page = fig.to_html(include_plotlyjs=True, full_html=True, config={"displaylogo": False})
    # sandboxed: its scripts run (plotly), but in an origin of their own, away from the page and kernel
    return (f'<iframe class="semcopy-map" sandbox="allow-scripts" style="width:100%;height:{height}px;border:0" '
            f'srcdoc="{html.escape(page, quote=True)}"></iframe>')
