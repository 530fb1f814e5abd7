"""What search understood of a query, drawn on it: layout regions, matched windows, verified pictures, key objects."""

from __future__ import annotations

from PIL import Image, ImageDraw

from semcopy_lib.app.results import QueryResult

#: Outline colour per region kind (``whole`` is not drawn).
COLOURS = {"photo": (0, 170, 80), "tile": (0, 170, 80), "subject": (200, 0, 160), "window": (30, 100, 230),
           "object": (240, 130, 0), "match": (220, 20, 20), "residual": (230, 180, 0),
           "rest": (0, 150, 190), "card": (120, 60, 200)}


def region_labels(result: QueryResult) -> dict[tuple, str]:
    """A short name per (box, kind) of the query's regions: ``whole image``, ``photo 1``, ``tile 2`` ...

    Numbers count each kind in the order the regions were found, as drawn by :func:`draw_understanding`.
    """
    counts: dict[str, int] = {}
    names = {}
    for region in result.regions:
        if region.kind == "whole":
            names[(region.box, region.kind)] = "whole image"
            continue
        counts[region.kind] = counts.get(region.kind, 0) + 1
        names[(region.box, region.kind)] = f"{region.kind} {counts[region.kind]}"
    return names


def draw_understanding(image: Image.Image, result: QueryResult, objects: bool = True, side: int = 480) -> Image.Image:
    """``image`` (the query, decoded at any size: ``image.info["original_size"]`` is its file's) shrunk to
    ``side``, with its regions outlined and named.

    Boxes in ``result`` are in the file's pixels; key objects (with their class and confidence)
    are drawn when ``objects`` is true.
    """
    out = image.convert("RGB")
    ow, oh = image.info.get("original_size", image.size)
    scale = min(1.0, side / max(ow, oh))  # file pixels -> drawn pixels
    size = (max(1, round(ow * scale)), max(1, round(oh * scale)))
    if size != out.size:
        out = out.resize(size, Image.BICUBIC)
    draw = ImageDraw.Draw(out)
    width = max(2, round(max(out.size) / 160))
    names = region_labels(result)
    marks = [(r.box, COLOURS[r.kind], names[(r.box, r.kind)]) for r in result.regions if r.kind in COLOURS]
    if objects:
        marks += [(d.box, COLOURS["object"], f"{d.label} {d.confidence:.2f}") for d in result.objects]
    for (x, y, w, h), colour, text in marks:
        box = (x * scale, y * scale, (x + w) * scale - 1, (y + h) * scale - 1)
        draw.rectangle(box, outline=colour, width=width)
        tx, ty = box[0] + width, box[1] + width
        draw.rectangle(draw.textbbox((tx, ty), text), fill=colour)
        draw.text((tx, ty), text, fill=(255, 255, 255))
    return out
