"""Groups of copies inside one gallery (``semcopy dedup``): which images are copies of each other, and
which one to keep.

Each image's neighbours come from the index's own search (exact, or IVF past 50,000 vectors), so the
work grows with the number of images times ``neighbours``, not with its square. Byte-identical files
(same sha256) are one node. A pair over the cosine threshold must also line up pixel for pixel
(their thumbnails, :func:`~semcopy_lib.segment.template.pixel_evidence`), in colour and in edges, so
that drawings alike but not copies stay apart. An image left alone then joins the group of a
neighbour under the threshold whose pixels it shows closely (a close crop around a drawing pasted on a
photo) or, without colour, whose outlines it has (a pencil sketch): :attr:`DedupConfig.lone_cosine`.
Nodes are grouped by one of two rules:

- ``keeper`` (default): nodes in keeper order (:func:`keeper_order`) each become a group's keeper
  unless already taken, and take the untaken neighbours that score at least the threshold *with the
  keeper*: every member is a copy of its keeper, nothing chains through a hub.
- ``components``: connected components of the pairs over the threshold (single linkage: A~B and B~C
  put A and C together even when A and C are far apart).

A group's keeper is its largest picture (pixels; a page or collage counts the largest picture it
holds), then the oldest file, then the first id: the copy with the most information, and the one most
likely to be the original. A page or collage that groups copies of a picture around itself hands the
name of keeper to the best of them that is a picture on its own (a page may show a picture enlarged
past its file).

A page or collage is matched by the pictures it holds: the index keeps a vector of each
(:func:`held_pictures`), and a pair found through one is checked on that picture's pixels.
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from semcopy_lib.data import ImageLoadError, load_image, to_rgb
from semcopy_lib.data.boxes import Box
from semcopy_lib.index import GalleryIndex, Record
from semcopy_lib.segment import scale_box
from semcopy_lib.segment.template import (COLOURLESS, STRIPED, THUMB_SIDE, TemplateConfig, bands, checked_thumbnails,
                                          colourless, found_in, pixel_evidence, read_thumbnails, small_edge_map)

METHODS = ("keeper", "components")
LEVELS = ("copy", "subject")
#: Query vectors searched at once.
BATCH = 1024


@dataclass(frozen=True)
class DedupConfig:
    """How pairs of copies are found (``semcopy dedup --neighbours --verify``).

    Attributes:
        neighbours: neighbours looked at per image: a group larger than this around one keeper is
            split in several.
        verify: pixel correlation (:func:`~semcopy_lib.segment.template.pixel_evidence`) a pair over
            the cosine threshold needs too: drawings alike but not copies (two speech bubbles) score
            close, their pixels do not line up. The highest value on the tuning split of ``bench
            dedup`` before true pairs go faster than false ones (docs/benchmarks.md); 0: no check.
        edges: correlation of the two thumbnails' edge maps (:func:`~semcopy_lib.segment.template.small_edge_map`,
            matched the same way) a pair that passes ``verify`` needs as well: look-alikes whose colours line up
            (two strawberries, jigsaw pieces with their tabs elsewhere) differ in their outlines, which a
            recoloured or recompressed copy keeps. Chosen as ``verify`` is (docs/benchmarks.md); 0: not checked.
        match: how thumbnails (96 px) are matched: a copy is often a crop of the other picture (down to
            60 % of its side), so sizes are tried in fine steps, and none between them (halving steps
            found no other pair; docs/benchmarks.md).
        lone_cosine: an image in no group once pairs are grouped looks again at its neighbours down to this
            cosine (a close crop around a drawing pasted on a photo, a pencil sketch: 0.4-0.635 from their
            picture) and joins the group of one of them, never as its keeper nor taking others in (it is
            made from that picture; a look-alike cannot split a group), when ...; 0: never.
        lone_neighbours: ... among its nearest this many (each a pixel check: the cost stays bounded in
            a gallery of many look-alikes) ...
        lone_pixels: ... their thumbnails line up at least this well (and their edge maps at ``edges``):
            stricter than ``verify``, for a pair under the cosine threshold; 0: not so ...
        outlines: ... or, for an image without colour, their edge maps correlate at least this well at the
            same framing (``outline_match``): a sketch keeps its picture's outlines and none of its
            colours; 0: not so. Each chosen on the tuning split of ``bench dedup`` (docs/benchmarks.md).
        outline_match: a sketch's edges matched at the picture's own size only (a sketch is drawn from the
            whole picture; at a crop's sizes one speech bubble's outline lines up with part of another's).
        colourless: mean HSV saturation (0-255, at 64 px) under which an image has no colour
            (:func:`~semcopy_lib.segment.template.colourless`).
        striped: share of gradient energy under which an image is made of bands
            (:func:`~semcopy_lib.segment.template.bands`): two striped images are copies only with as many
            bands (a two-band flag lines up with a crop of a three-band one); 0: not checked.
        together: the least sum of the two correlations (``verify``'s and ``edges``') a pair needs: two
            drawings of one series (an arrow pointing up and one pointing down in the same red square)
            reach both bars just, a copy both well. The highest value before true pairs go on the
            tuning galleries of ``bench dedup``, seeds 0-2 (docs/benchmarks.md); 0: none.
    """

    neighbours: int = 32
    verify: float = 0.8
    edges: float = 0.7
    match: TemplateConfig = field(default_factory=lambda: TemplateConfig(
        work_side=64, scales=(0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0), halvings=0))
    lone_cosine: float = 0.4
    lone_neighbours: int = 5
    lone_pixels: float = 0.9
    outlines: float = 0.8
    outline_match: TemplateConfig = field(default_factory=lambda: TemplateConfig(work_side=64, scales=(1.0,), halvings=0))
    colourless: float = COLOURLESS
    striped: float = STRIPED
    together: float = 1.65


DEDUP = DedupConfig()


@dataclass(frozen=True)
class Member:
    """One image of a group: its score with the keeper (1.0 for the keeper; ``exact``: same bytes;
    ``joined``: ``pixels`` or ``outlines`` when it joined the group alone, :attr:`DedupConfig.lone_cosine`,
    through the member ``joined_to``: its score is then their cosine, under the threshold)."""

    gallery_id: str
    score: float
    exact: bool
    width: int
    height: int
    source: str
    joined: str | None = None
    joined_to: str | None = None


@dataclass
class Group:
    """Images that are copies of one another; ``members[0]`` is the keeper. ``tier``: ``exact`` when
    all are byte-identical, else the level the threshold stands for (``copy`` or ``subject``)."""

    tier: str
    members: list[Member] = field(default_factory=list)

    @property
    def keeper(self) -> Member:
        return self.members[0]

    def to_dict(self) -> dict:
        return {"tier": self.tier, "keeper": self.keeper.gallery_id, "size": len(self.members),
                "members": [{"id": m.gallery_id, "score": round(m.score, 4), "exact": m.exact, "joined": m.joined,
                             "joined_to": m.joined_to, "width": m.width, "height": m.height} for m in self.members]}


def keeper_order(records: list[Record], held: dict[str, int] | None = None) -> list[int]:
    """Positions of ``records`` best keeper first: most pixels of the picture (the whole image's box; for
    a page or collage, the largest picture it holds, ``held``: area by gallery id, since it is made of
    pictures and not the other way round), then the oldest file (modification time; a missing file
    counts as newest), then gallery id."""
    held = held or {}

    def mtime(r: Record) -> float:
        try:
            return os.stat(r.source).st_mtime if r.source else float("inf")
        except OSError:
            return float("inf")

    return sorted(range(len(records)), key=lambda i: (-held.get(records[i].gallery_id, records[i].box[2] * records[i].box[3]),
                                                      mtime(records[i]), records[i].gallery_id))


def held_pictures(records: list[Record]) -> dict[int, Record]:
    """{vector id: record} of the vectors among ``records`` (an index's) that are a picture held by a
    gallery page or collage (indexed with :class:`~semcopy_lib.segment.page_pictures.PagePicturesConfig`):
    every box of an image smaller than its whole-image box, but a drawing trimmed to what shows
    (:attr:`~semcopy_lib.index.store.Record.parts_only`)."""
    whole: dict[str, int] = {}
    for r in records:
        whole[r.gallery_id] = max(whole.get(r.gallery_id, 0), r.box[2] * r.box[3])
    return {r.id: r for r in records if r.box[2] * r.box[3] < whole[r.gallery_id] and not r.parts_only}


def neighbour_pairs(index: GalleryIndex, vectors: np.ndarray, ids: list[str], threshold: float,
                    neighbours: int = DEDUP.neighbours, progress: bool = False, records: list[Record] | None = None,
                    rows: list[int] | None = None
                    ) -> tuple[dict[tuple[int, int], float], dict[tuple[int, int], tuple[int, Box]]]:
    """({(i, j): cosine}, {(i, j): (holder, box)}) for i < j, image positions in ``ids``, of each image's
    ``neighbours`` nearest gallery images (the index's vector search; an image's best view counts) that
    score at least ``threshold``; the second dict holds the pairs whose best vector was a picture that
    one of the two (``holder``) holds (:func:`held_pictures`), its box in the holder's file pixels.
    ``records``: the index's, when already read; ``rows``: the positions of ``vectors`` in ``ids`` when
    they are not all of them in order."""
    position = {gid: i for i, gid in enumerate(ids)}
    records = records if records is not None else index.records()
    held = held_pictures(records)
    image_of = np.full(max((r.id for r in records), default=-1) + 2, -1, dtype=np.int64)  # vector id -> position
    for r in records:  # a view kept for region searches only is not the image's (a canvas is compared whole)
        image_of[r.id] = -1 if r.parts_only else position.get(r.gallery_id, -1)
    views = max(1, len(records) // max(1, len(ids)))
    fetch = min(len(records), (neighbours + 1) * views)
    pairs: dict[tuple[int, int], float] = {}
    through: dict[tuple[int, int], tuple[int, Box]] = {}
    positions = np.arange(len(vectors)) if rows is None else np.asarray(rows, dtype=np.int64)
    for start in tqdm(range(0, len(vectors), BATCH), desc="neighbours", unit="batch", disable=not progress):
        scores, vids = index.search_vectors(vectors[start:start + BATCH], fetch)
        found = image_of[np.where(vids >= 0, vids, -1)]
        mine = positions[start:start + len(scores)][:, None]
        keep = (scores >= threshold) & (found >= 0) & (found != mine)
        for i, j, score, vid in zip(np.broadcast_to(mine, found.shape)[keep], found[keep], scores[keep], vids[keep]):
            key = (int(min(i, j)), int(max(i, j)))
            if score > pairs.get(key, -1.0):
                pairs[key] = float(score)
                if int(vid) in held:
                    through[key] = (int(j), held[int(vid)].box)
                else:
                    through.pop(key, None)
    return pairs, through


def _held_picture(index: GalleryIndex, record: Record, box: Box, thumb: Image.Image) -> Image.Image:
    """The picture at ``box`` (file pixels) of the page ``record``, at thumbnail size: cut from its file
    (the thumbnail is too small to cut from), else from ``thumb`` when the file cannot be read or is not
    one the index may read (:meth:`~semcopy_lib.index.GalleryIndex.image_file`)."""
    side = max(record.box[2], record.box[3]) * THUMB_SIDE // max(1, box[2], box[3]) + 1  # the picture ~96 px
    path, page = index.image_file(record.source), to_rgb(thumb)
    if path is not None:
        try:
            page = load_image(path, max_side=side)
        except ImageLoadError:
            pass
    x, y, w, h = scale_box(box, page.width / max(1, record.box[2]), page.height / max(1, record.box[3]))
    picture = page.crop((x, y, x + max(1, w), y + max(1, h)))
    picture.thumbnail((THUMB_SIDE, THUMB_SIDE))
    return picture


class _HeldPictures:
    """The pictures that gallery pages and collages hold (``holds``: their boxes in file pixels, by gallery
    id, from :func:`held_pictures`), cut at thumbnail size once each (:func:`_held_picture`), with their
    edge maps."""

    def __init__(self, index: GalleryIndex, holds: Mapping[str, list[Box]]):
        self.index, self.holds = index, holds
        self.cut: dict[str, list[tuple[Image.Image, Image.Image]]] = {}  # (picture, its small_edge_map)

    def agree(self, a: Record, b: Record, thumbs: Mapping[str, Image.Image], config: DedupConfig) -> bool:
        """False when both images hold pictures and none of ``a``'s lines up with one of ``b``'s (at
        ``config.verify``, their edges at ``config.edges``): two pages made from one template line up as
        pages whatever pictures they show."""
        if a.gallery_id not in self.holds or b.gallery_id not in self.holds:
            return True
        for r in (a, b):
            if r.gallery_id not in self.cut:
                pictures = [_held_picture(self.index, r, box, thumbs[r.gallery_id]) for box in self.holds[r.gallery_id]]
                self.cut[r.gallery_id] = [(p, small_edge_map(p)) for p in pictures]
        return any((pixels := pixel_evidence(p, q, config.match)) >= config.verify
                   and _confirmed(p, q, pe, qe, config, pixels)
                   for p, pe in self.cut[a.gallery_id] for q, qe in self.cut[b.gallery_id])


def _confirmed(a: Image.Image, b: Image.Image, a_edges: Image.Image | Callable[[], Image.Image],
               b_edges: Image.Image | Callable[[], Image.Image], config: DedupConfig, pixels: float) -> bool:
    """Whether thumbnails ``a`` and ``b``, whose pixels line up at ``pixels``, are copies on the rest of the
    evidence: as many bands when both are striped (:attr:`DedupConfig.striped`), and their edge maps (or
    the callables that make them, only when needed) lined up at ``config.edges``, and at
    ``config.together`` with ``pixels``."""
    if config.striped > 0 and 0 < bands(a, config.striped) != bands(b, config.striped) > 0:
        return False
    if config.edges <= 0:
        return True
    a_edges, b_edges = (e() if callable(e) else e for e in (a_edges, b_edges))
    edges = pixel_evidence(a_edges, b_edges, config.match)
    return edges >= config.edges and pixels + edges >= config.together


def _evidence(pairs: Iterable[tuple[int, int]], pictures: Mapping[int, Image.Image], config: TemplateConfig,
              progress: bool = False, desc: str = "pixel checks") -> dict[tuple[int, int], float]:
    """{(i, j): :func:`pixel_evidence` of ``pictures[i]`` and ``pictures[j]``} for ``pairs`` (i < j), the same
    values, worked out picture by picture: each is looked for (:func:`found_in`) inside all its partners
    in turn, so that its templates are made once, not at every pair (most of a pair's cost), and pictures
    go to worker threads (OpenCV and Pillow let go of the GIL)."""
    partners: dict[int, list[int]] = {}
    for i, j in pairs:
        partners.setdefault(i, []).append(j)
        partners.setdefault(j, []).append(i)
    shown = {k: to_rgb(pictures[k]) for k in partners}  # each query's composite on white, once

    def inside_partners(p: int) -> list[float]:
        return [found_in(pictures[p], shown[q], config) for q in partners[p]]

    evidence: dict[tuple[int, int], float] = {}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        found = pool.map(inside_partners, partners)
        for p, values in tqdm(zip(partners, found), total=len(partners), desc=desc, unit="picture", disable=not progress):
            for q, value in zip(partners[p], values):
                key = (min(p, q), max(p, q))
                evidence[key] = max(evidence.get(key, -1.0), value)
    return evidence


def _verified(index: GalleryIndex, pairs: dict[tuple[int, int], float], records: list[Record], config: DedupConfig,
              progress: bool, through: dict[tuple[int, int], tuple[int, Box]] | None = None,
              pictures: _HeldPictures | None = None) -> dict[tuple[int, int], float]:
    """``pairs`` whose thumbnails show pixel evidence of at least ``config.verify``, and their edge maps at
    least ``config.edges`` (a pair without thumbnails, from an index made before they were kept, stays). A
    pair found through a picture that one image holds (``through``) is checked on that picture; a pair of
    two images that both hold pictures (``pictures``), on those pictures too."""
    if config.verify <= 0 or not pairs:
        return pairs
    through = through or {}
    wanted = {records[i].gallery_id for pair in pairs for i in pair}
    thumbs = read_thumbnails(index.thumbs(wanted))
    edge_maps: dict[str, Image.Image] = {}  # by gallery id: an image is in several pairs

    def edges_of(position: int, picture: Image.Image, held: bool) -> Image.Image:
        if held:
            return small_edge_map(picture)
        gallery_id = records[position].gallery_id
        if gallery_id not in edge_maps:
            edge_maps[gallery_id] = small_edge_map(picture)
        return edge_maps[gallery_id]

    plain = [pair for pair in pairs if pair not in through
             and all(records[k].gallery_id in thumbs for k in pair)]
    evidence = _evidence(plain, {k: thumbs[records[k].gallery_id] for pair in plain for k in pair}, config.match,
                         progress)
    kept = {}
    for (i, j), score in pairs.items():
        a, b = thumbs.get(records[i].gallery_id), thumbs.get(records[j].gallery_id)
        holder = None
        if a is not None and b is not None and (i, j) in through:
            holder, box = through[(i, j)]
            held = _held_picture(index, records[holder], box, a if holder == i else b)
            a, b = (held, b) if holder == i else (a, held)
        if a is None or b is None:
            kept[(i, j)] = score
        elif (pixels := evidence[(i, j)] if holder is None else pixel_evidence(a, b, config.match)) >= config.verify \
                and _confirmed(a, b, lambda: edges_of(i, a, holder == i), lambda: edges_of(j, b, holder == j), config,
                               pixels) and (
                holder is not None or pictures is None or pictures.agree(records[i], records[j], thumbs, config)):
            kept[(i, j)] = score
    return kept


def _lone_joins(index: GalleryIndex, records: list[Record], vectors: np.ndarray, alone: list[int],
                every: list[Record], config: DedupConfig, progress: bool) -> dict[int, tuple[int, str, float]]:
    """{x: (b, how, their cosine)} for the images ``alone`` (positions in ``records``) that join their
    neighbour ``b``'s group: among their ``config.lone_neighbours`` nearest at cosine ``config.lone_cosine``
    or more (held pictures left out), the one whose thumbnail lines up best with x's when that reaches
    ``config.lone_pixels`` and their edge maps ``config.edges`` (how: ``pixels``); else, for an image
    without colour, the one whose edge map lines up best with x's when that reaches ``config.outlines``
    (``outlines``)."""
    if config.lone_cosine <= 0 or not alone or (config.lone_pixels <= 0 and config.outlines <= 0):
        return {}
    ids = [r.gallery_id for r in records]
    near, through = neighbour_pairs(index, vectors[alone], ids, config.lone_cosine, config.lone_neighbours, False,
                                    every, rows=alone)
    lone = set(alone)
    candidates: dict[int, list[int]] = {}
    for (i, j) in near:  # the pair's cosine: the best of the two images' views
        if (i, j) not in through:
            for x, b in ((i, j), (j, i)):
                if x in lone:
                    candidates.setdefault(x, []).append(b)
    thumbs = read_thumbnails(index.thumbs({ids[i] for x, found in candidates.items() for i in (x, *found)}))
    pictures = {i: thumbs[ids[i]] for x, found in candidates.items() for i in (x, *found) if ids[i] in thumbs}
    edges: dict[int, Image.Image] = {}

    def edges_of(i: int) -> Image.Image:
        if i not in edges:
            edges[i] = small_edge_map(pictures[i])
        return edges[i]

    def asked(xs: Iterable[int]) -> list[tuple[int, int]]:
        return sorted({(min(x, b), max(x, b)) for x in xs for b in candidates[x] if b in pictures})

    def best(x: int, evidence: Mapping[tuple[int, int], float], at_least: float) -> int | None:
        scored = {b: evidence[min(x, b), max(x, b)] for b in candidates[x] if b in pictures}
        top = max(scored, key=scored.__getitem__, default=None)
        return top if top is not None and scored[top] >= at_least else None

    lone = [x for x in sorted(candidates) if x in pictures]
    pixels = _evidence(asked(lone), pictures, config.match, progress, "lone images") if config.lone_pixels > 0 else {}
    joins, sketches = {}, []
    for x in lone:
        b = best(x, pixels, config.lone_pixels) if config.lone_pixels > 0 else None
        if b is not None and _confirmed(pictures[x], pictures[b], edges_of(x), edges_of(b), config,
                                        pixels[min(x, b), max(x, b)]):
            joins[x] = (b, "pixels", near[min(x, b), max(x, b)])
        elif config.outlines > 0 and colourless(pictures[x], config.colourless):
            sketches.append(x)
    pairs = asked(sketches)
    outlines = _evidence(pairs, {i: edges_of(i) for pair in pairs for i in pair}, config.outline_match)
    for x in sketches:
        b = best(x, outlines, config.outlines)
        if b is not None:
            joins[x] = (b, "outlines", near[min(x, b), max(x, b)])
    return joins


def find_duplicates(index: GalleryIndex, threshold: float, level: str = "copy", method: str = "keeper",
                    config: DedupConfig = DEDUP, progress: bool = False) -> list[Group]:
    """The gallery's groups of copies (two images or more), largest first.

    Args:
        threshold: cosine from which two images are copies (the encoder's ``copy_score`` or
            ``subject_score``, which ``level`` names).
        method: ``keeper`` or ``components`` (module docstring).
        config: how many neighbours, the pixel evidence a pair needs as well, and how an image left
            alone joins a group by its pixels or outlines (:class:`DedupConfig`).

    Raises:
        ValueError: an unknown ``method`` or ``level``.
    """
    if method not in METHODS or level not in LEVELS:
        raise ValueError(f"method must be one of {', '.join(METHODS)} and level one of {', '.join(LEVELS)}")
    index.refresh()  # another process may have added images since this index was opened
    every = index.records()
    records, vectors = index.image_vectors(every)
    if not records:
        return []
    # byte-identical files are one node, represented by their best keeper
    largest: dict[str, int] = {}  # a page's or collage's largest held picture
    holds: dict[str, list[Box]] = {}
    for r in held_pictures(every).values():
        largest[r.gallery_id] = max(largest.get(r.gallery_id, 0), r.box[2] * r.box[3])
        holds.setdefault(r.gallery_id, []).append(r.box)
    pictures = _HeldPictures(index, holds)
    order = keeper_order(records, largest)
    rank = {i: r for r, i in enumerate(order)}
    rep_of_sha: dict[str, int] = {}
    nodes: dict[int, list[int]] = {}  # node (its representative's position) -> image positions
    node_of = {}
    for i in order:
        rep = rep_of_sha.setdefault(records[i].sha256, i)
        node_of[i] = rep
        nodes.setdefault(rep, []).append(i)
    ids = [r.gallery_id for r in records]
    pairs, through = neighbour_pairs(index, vectors, ids, threshold, config.neighbours, progress, every)
    pairs = _verified(index, pairs, records, config, progress, through, pictures)
    linked: dict[int, dict[int, float]] = {}  # node -> {node: best score between their images}
    for (i, j), score in pairs.items():
        a, b = node_of[i], node_of[j]
        if a != b:
            linked.setdefault(a, {})[b] = max(linked.get(a, {}).get(b, -1.0), score)
            linked.setdefault(b, {})[a] = max(linked.get(b, {}).get(a, -1.0), score)
    reps = sorted(nodes, key=rank.__getitem__)
    clusters = _keeper_clusters(reps, linked) if method == "keeper" else _components(reps, linked, rank)
    clusters = [_plain_keeper(keeper, taken, lambda n: ids[n] in largest, rank) for keeper, taken in clusters]
    # an image alone by now joins the group its pixels or outlines put it in (never as a keeper, nor taking
    # others in: a close crop or a sketch is made from its picture), or starts one with that picture
    alone = [keeper for keeper, taken in clusters if not taken and len(nodes[keeper]) == 1]
    found = _lone_joins(index, records, vectors, alone, every, config, progress)

    def stays(n: int) -> bool:  # of two lone images that would join each other, the better keeper stays
        if n not in found:
            return True
        b = node_of[found[n][0]]
        return b in found and node_of[found[b][0]] == n and rank[n] < rank[b]

    joins = {x: found[x] for x in found if not stays(x) and stays(node_of[found[x][0]])}  # no chains
    cluster_of = {rep: c for c, (keeper, taken) in enumerate(clusters) for rep in (keeper, *taken)}
    joined: dict[int, list[int]] = {}  # cluster -> the lone nodes that join it
    for x, (b, *_) in joins.items():
        joined.setdefault(cluster_of[node_of[b]], []).append(x)
    groups = []
    for c, (keeper, taken) in enumerate(clusters):
        if keeper in joins:
            continue  # moved into another group
        # a component's member need not be the keeper's neighbour: then its score is the cosine of the two;
        # a lone one's, the cosine with the image it joined through
        score_of = {b: linked[keeper][b] if b in linked.get(keeper, {}) else float(vectors[keeper] @ vectors[b])
                    for b in taken}
        score_of.update({x: joins[x][2] for x in joined.get(c, [])})
        members = []
        for rep in [keeper, *sorted(taken, key=lambda b: (-score_of[b], rank[b])),
                    *sorted(joined.get(c, []), key=lambda b: (-score_of[b], rank[b]))]:
            for i in nodes[rep]:
                r = records[i]
                how, to = (joins[rep][1], records[joins[rep][0]].gallery_id) if rep in joins else (None, None)
                members.append(Member(r.gallery_id, 1.0 if rep == keeper else score_of[rep], rep == keeper,
                                      r.box[2], r.box[3], r.source, how, to))
        if len(members) > 1:
            groups.append(Group("exact" if all(m.exact for m in members) else level, members))
    return sorted(groups, key=lambda g: (-len(g.members), g.keeper.gallery_id))


def _keeper_clusters(reps: list[int], linked: dict[int, dict[int, float]]) -> list[tuple[int, list[int]]]:
    """Each untaken node, best keeper first, takes its untaken neighbours (all over the threshold)."""
    taken: set[int] = set()
    clusters = []
    for rep in reps:
        if rep in taken:
            continue
        mine = [b for b in linked.get(rep, {}) if b not in taken]
        taken.add(rep)
        taken.update(mine)
        clusters.append((rep, mine))
    return clusters


def _plain_keeper(keeper: int, taken: list[int], holds: Callable[[int], bool],
                  rank: Mapping[int, int]) -> tuple[int, list[int]]:
    """``(keeper, taken)`` of a group, its keeper named anew when it holds pictures (a page or collage,
    ``holds``) and another member does not: the best ranked of those. A page shows pictures made
    elsewhere and may show one enlarged past its file, and the keeper is the file to keep; the members
    stay those the keeper order grouped (the page's picture is what links them)."""
    if not holds(keeper):
        return keeper, taken
    plain = [b for b in taken if not holds(b)]
    if not plain:
        return keeper, taken
    best = min(plain, key=rank.__getitem__)
    return best, [keeper, *(b for b in taken if b != best)]


def _components(reps: list[int], linked: dict[int, dict[int, float]], rank: dict[int, int]) -> list[tuple[int, list[int]]]:
    """Connected components; each one's best keeper first."""
    seen: set[int] = set()
    clusters = []
    for rep in reps:
        if rep in seen:
            continue
        stack, part = [rep], []
        seen.add(rep)
        while stack:
            a = stack.pop()
            part.append(a)
            for b in linked.get(a, {}):
                if b not in seen:
                    seen.add(b)
                    stack.append(b)
        part.sort(key=rank.__getitem__)
        clusters.append((part[0], part[1:]))
    return clusters


def default_threshold(encoder, level: str) -> float:
    """The encoder's measured threshold for ``level``.

    Raises:
        ValueError: the encoder has not measured it (give ``--threshold``).
    """
    value = encoder.copy_score if level == "copy" else encoder.subject_score
    if value is None:
        raise ValueError(f"encoder {encoder.name} has no measured {level} score: give --threshold")
    return float(value)


def report_fragment(groups: list[Group] | list[dict], thumbs: dict[str, bytes]) -> str:
    """The groups as HTML (a ``<div class="semcopy-report">`` with its own scoped style): one strip of
    thumbnails per group, keeper first, with the scores. Groups as :class:`Group` or its ``to_dict()``;
    ``thumbs``: PNG bytes by gallery id, as the index holds them (a member whose bytes do not decode is
    shown without its thumbnail)."""
    import base64
    import html

    thumbs = checked_thumbnails(thumbs)

    def cell(m: dict, keeper: bool) -> str:
        img = (f'<img src="data:image/png;base64,{base64.b64encode(thumbs[m["id"]]).decode()}" alt="">'
               if m["id"] in thumbs else '<div class="none">no thumbnail</div>')
        what = "keeper" if keeper else ("same file" if m["exact"] else f"score {m['score']:.3f}"
                                        + (f" (by its {html.escape(str(m['joined']))}, to "
                                           f"{html.escape(str(m.get('joined_to')))})" if m.get("joined") else ""))
        return (f'<figure class="{"keeper" if keeper else ""}">{img}<figcaption>{html.escape(m["id"])}'
                f"<br>{m['width']}×{m['height']} · {what}</figcaption></figure>")

    groups = [g.to_dict() if isinstance(g, Group) else g for g in groups]
    strips = "".join(
        f'<section><h2>Group {n}: {g["size"]} images, {g["tier"]}</h2><div class="strip">'
        + "".join(cell(m, k == 0) for k, m in enumerate(g["members"])) + "</div></section>"
        for n, g in enumerate(groups, start=1))
    return ('<div class="semcopy-report"><style>.semcopy-report .strip{display:flex;flex-wrap:wrap;gap:8px}'
            ".semcopy-report figure{margin:0;max-width:160px;font-size:12px;padding:2px}"
            ".semcopy-report figure img{max-width:160px;max-height:160px}"
            ".semcopy-report figure.keeper{outline:3px solid #2a7}.semcopy-report h2{font-size:15px}</style>"
            f"{strips}</div>")


def report_html(fragment: str, title: str = "semcopy dedup") -> str:
    """A self-contained page around :func:`report_fragment`."""
    import html

    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body style='font-family:sans-serif;margin:1em'><h1>{html.escape(title)}</h1>{fragment}</body></html>")


def rows_csv(groups: list[Group]) -> list[dict]:
    """One row per member: group, tier, id, keeper, score, exact, joined, joined_to, width, height."""
    return [{"group": n, "tier": g.tier, "id": m.gallery_id, "keeper": g.keeper.gallery_id, "score": round(m.score, 4),
             "exact": m.exact, "joined": m.joined or "", "joined_to": m.joined_to or "", "width": m.width, "height": m.height}
            for n, g in enumerate(groups, start=1) for m in g.members]


#: The log that ``move_copies`` writes in the folder it moves to (one JSON object per moved file).
MOVES_LOG = "semcopy-moves.jsonl"


def unchanged_groups(groups: list[Group], recorded: Mapping[str, str]) -> tuple[list[Group], list[str]]:
    """The groups whose files all still hold what was indexed (``recorded``: sha256 by gallery id), and one
    line per other group: a file changed or gone since indexing may no longer be a copy, or no longer
    the keeper's picture, so nothing of that group is moved."""
    from semcopy_lib.data.folders import sha256_of

    fresh, lines = [], []
    for group in groups:
        changed = next((m for m in group.members if not m.source or not Path(m.source).is_file()
                        or sha256_of(Path(m.source)) != recorded.get(m.gallery_id)), None)
        if changed is None:
            fresh.append(group)
        else:
            lines.append(f"{changed.source or changed.gallery_id}: changed or gone since it was indexed; its group "
                         "is not moved ('semcopy index sync' first)")
    return fresh, lines


def planned_moves(groups: list[Group], dest: os.PathLike | str) -> list[tuple[str, Path, Path]]:
    """(gallery id, its file, where it would go) for every member but the keepers: ``dest/<gallery id>``."""
    return [(m.gallery_id, Path(m.source), Path(dest) / m.gallery_id)
            for g in groups for m in g.members[1:] if m.source]


def move_copies(moves: list[tuple[str, Path, Path]], dest: os.PathLike | str) -> tuple[list[str], list[str]]:
    """Move the files of ``moves`` (:func:`planned_moves` into ``dest``), each logged in
    ``dest/MOVES_LOG`` before the next one moves, so an interrupted run leaves a log that undoes what it did.
    A file that is gone, or whose destination exists, is left where it is.

    Returns:
        (gallery ids moved, one line per file left, saying why).
    """
    moved, left = [], []
    for gallery_id, src, dst in moves:
        if not src.is_file():
            left.append(f"{src}: no such file (not moved)")
            continue
        if dst.exists():
            left.append(f"{src}: {dst} exists (not moved)")
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(src), str(dst))
        with open(Path(dest) / MOVES_LOG, "a", encoding="utf-8") as log:
            # absolute, so that the log undoes from any working folder
            log.write(json.dumps({"id": gallery_id, "from": str(src.absolute()), "to": str(dst.absolute())}) + "\n")
        moved.append(gallery_id)
    return moved, left


def read_moves(log_path: os.PathLike | str, root: os.PathLike | str | None = None) -> list[dict]:
    """The entries of a :data:`MOVES_LOG` in the order written: ``{"id", "from", "to"}``, paths absolute.

    A relative path (a log of an older semcopy, relative to the folder it ran in) is read from what it
    names: ``to`` is the log's folder / ``id``, ``from`` is ``root`` (the gallery's folder) / ``id``, or
    relative to the working folder without ``root``.

    Raises:
        ValueError: a line is not such an entry (the message names the log and the line).
    """
    log_path = Path(log_path)
    entries = []
    for n, line in enumerate(log_path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            gallery_id, src, dst = str(entry["id"]), Path(entry["from"]), Path(entry["to"])
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{log_path}: line {n} is not an entry of a semcopy moves log") from None
        to = dst if dst.is_absolute() else log_path.absolute().parent / gallery_id
        back = src if src.is_absolute() or root is None else Path(root) / gallery_id
        entries.append({"id": gallery_id, "from": back.absolute(), "to": to})
    return entries


def undo_moves(log_path: os.PathLike | str, root: os.PathLike | str | None = None) -> tuple[list[Path], list[str]]:
    """Move back every file a :data:`MOVES_LOG` names, newest first (``root``: the gallery's folder, for
    an older log's relative paths, :func:`read_moves`). When all went back the log is renamed
    ``.undone``; else it keeps only the files left, so that undoing again finishes the job.

    Returns:
        (the files back in place, one line per file that could not go back).

    Raises:
        ValueError: the log is not a moves log (:func:`read_moves`); nothing is moved.
    """
    log_path = Path(log_path)
    entries = read_moves(log_path, root)
    back, left, kept = [], [], []
    for entry in reversed(entries):
        src, dst = entry["to"], entry["from"]
        if not src.is_file() or dst.exists():
            left.append(f"{src}: {'gone' if not src.is_file() else f'{dst} exists'} (not moved back)")
            kept.append(entry)
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(src), str(dst))
        back.append(dst)
    if kept:
        log_path.write_text("".join(json.dumps({"id": e["id"], "from": str(e["from"]), "to": str(e["to"])}) + "\n"
                                    for e in reversed(kept)), encoding="utf-8")
    else:
        log_path.rename(log_path.with_name(log_path.name + ".undone"))
    return back, left
