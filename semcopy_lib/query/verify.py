"""Pixel evidence: the first hits' gallery pictures looked for in the query (or the query in them)."""

from __future__ import annotations

from dataclasses import replace
from typing import Collection, Mapping, Sequence, TypeVar

import numpy as np
from PIL import Image

from semcopy_lib.data.boxes import Box
from semcopy_lib.query.config import RestConfig, VerifyConfig
from semcopy_lib.segment import crop, scale_box
from semcopy_lib.segment.template import (colourless, edges_near, match_crop, match_picture, pixel_evidence,
                                          small_edge_map)

#: A frozen dataclass hit with ``gallery_id``, ``score``, ``query_box`` and ``region_kind`` (the service's ``SearchHit``).
Hit = TypeVar("Hit")


def to_check(ranked: list[Hit], config: VerifyConfig, copy: bool, cards: Collection[str] = ()) -> list[Hit]:
    """The hits of ``ranked`` (best first) whose pictures :func:`verified` looks for: a copy's first
    ``config.top`` hits and the first ``top`` of what its picture does not explain (``residual``); else
    those of the first ``top`` that a perfect match could lift into the first two (a composite's two
    sources are both wanted there); and the hits of ``cards`` (gallery ids, the first hits of regions
    searched turned upright), however low: a card may be that picture turned, which its pixels tell."""
    if not ranked:
        return []
    if copy:
        return ranked[: config.top] + [h for h in ranked[config.top :] if h.region_kind == "residual"][: config.top]
    reach = ranked[min(1, len(ranked) - 1)].score - config.weight * (1.0 - config.start)
    chosen = [h for h in ranked[: config.top] if h.score >= reach]
    return chosen + [h for h in ranked if h.gallery_id in cards and all(h is not c for c in chosen)]


def found_inside(image: Image.Image, hits: list[Hit], thumbs: Mapping[str, Image.Image], config: VerifyConfig,
                 seen: dict[str, float] | None = None) -> bool:
    """Whether ``image`` (the query, RGB) is found inside the picture of one of the first ``config.top`` of
    ``hits`` (its whole image's, best first; thumbnails in ``thumbs``) at a correlation over
    ``config.start`` (:func:`~semcopy_lib.segment.template.match_crop`): what makes a query whose whole
    image reaches the copy level a copy. In a large gallery some flat picture (a flag of coloured blocks)
    reaches that level with a whole collage or page, which holds no such picture. ``seen``: gets each
    correlation computed, by gallery id (:func:`verified` need not compute it again)."""
    seen = {} if seen is None else seen
    return any(_inside(image, hit.gallery_id, thumbs, config, seen) > config.start  # the first found ends it
               for hit in hits[: config.top] if hit.gallery_id in thumbs)


def held_in(image: Image.Image, hits: list[Hit], thumbs: Mapping[str, Image.Image], config: VerifyConfig,
            seen: dict[str, float]) -> set[str]:
    """The gallery ids among the first ``config.top`` of ``hits`` whose pictures hold ``image`` (the query,
    RGB) at a correlation over ``config.start``, as :func:`found_inside` finds them; correlations already
    in ``seen`` (by gallery id) are reused, the others added to it."""
    return {hit.gallery_id for hit in hits[: config.top]
            if hit.gallery_id in thumbs and _inside(image, hit.gallery_id, thumbs, config, seen) > config.start}


def _inside(image: Image.Image, gallery_id: str, thumbs: Mapping[str, Image.Image], config: VerifyConfig,
            seen: dict[str, float]) -> float:
    """The correlation of ``image`` found inside the picture of ``gallery_id``
    (:func:`~semcopy_lib.segment.template.match_crop`), from ``seen`` when computed before, else added to it."""
    if gallery_id not in seen:
        seen[gallery_id] = match_crop(image, thumbs[gallery_id], config.template)
    return seen[gallery_id]


def closing(score: float, correlation: float, to: float, config: VerifyConfig) -> float:
    """``score`` with ``(correlation - start) / (1 - start)`` (at most all) of its gap to ``to`` closed: a
    hit whose picture's pixels were found scores as near ``to`` as they were found well."""
    return score + (to - score) * min(1.0, (correlation - config.start) / (1.0 - config.start))


def verified(image: Image.Image, ranked: list[Hit], top: list[Hit], thumbs: Mapping[str, Image.Image],
             config: VerifyConfig, copy_level: float | None, copy: bool = False,
             seen: Mapping[str, float] | None = None, found_at: Mapping[str, Sequence[Box]] | None = None,
             cards: Mapping[str, Sequence[tuple[Box, Image.Image]]] | None = None,
             copied: str | None = None) -> list[Hit]:
    """``ranked`` with the hits ``top`` (:func:`to_check`) re-scored by finding their gallery picture's
    pixels in ``image`` around the region that found each, and ranked again.

    A hit whose picture is found (correlation c over ``config.start``) gains ``config.weight * (c - start)``
    and reports where: its box becomes that place, of kind ``match``. With ``copy`` (``image`` copies a
    gallery picture) a whole-image hit is looked for the other way round, ``image`` inside its picture
    (:func:`~semcopy_lib.segment.template.match_crop`), and closes ``(c - start) / (1 - start)`` of its gap
    to 1 (an exact copy keeps its 1, no score passes it); a residual hit found in place closes that share
    of its gap to ``copy_level``; and the copied picture ranks above its residual parts' look-alikes
    (:func:`copy_before_alternatives`). Hits without a thumbnail in ``thumbs`` keep their score and box.

    Args:
        image: the query (RGB) at work size; ``image.info["original_size"]`` is its file's size (hits'
            boxes are in file pixels).
        thumbs: thumbnails by gallery id (:func:`~semcopy_lib.segment.template.read_thumbnails`).
        seen: a copy's correlations with the pictures it was already looked for in (:func:`found_inside`);
            the first whole-image hit found inside (over ``config.start``) is the copied picture.
        copied: the gallery id of the picture that the query is known to show beside the parts it does
            not explain (a photo found by a part, with which the whole query aligns), when not a copy.
        found_at: the boxes (file pixels, best first) of the other regions that found each gallery id: a
            picture not found around its hit's own region is looked for around the first
            ``config.elsewhere`` of them.
        cards: by gallery id, the regions searched turned back upright (a card pasted at a slant) whose
            first hit it is: (box in file pixels, the upright pixels). Its picture is also looked for in
            them; found, the card is a copy of it: the hit closes ``(c - start) / (1 - start)`` of its gap
            to ``copy_level`` and its box is the card's.
    """
    parts = {hit.gallery_id: hit.query_box for hit in ranked if hit.region_kind == "residual"}
    if copy:  # the copy's picture: the first whole-image hit that the query was found inside
        copied = next((h.gallery_id for h in ranked if h.region_kind == "whole"
                       and (seen or {}).get(h.gallery_id, -1.0) > config.start), None)
    if not top or not thumbs:
        return copy_before_alternatives(ranked, copied, parts)
    copy_level = copy_level or 1.0
    (ow, oh), (w, h) = image.info["original_size"], image.size
    turned = replace(config.template, turns=config.turns)
    scored = []
    for hit in top:
        if hit.gallery_id in thumbs and copy and hit.region_kind == "whole":
            correlation = (seen[hit.gallery_id] if seen and hit.gallery_id in seen
                           else match_crop(image, thumbs[hit.gallery_id], config.template))
            if correlation > config.start:
                hit = replace(hit, score=max(hit.score, closing(hit.score, correlation, 1.0, config)))
        elif hit.gallery_id in thumbs:
            correlation, where = -1.0, None
            others = [b for b in (found_at or {}).get(hit.gallery_id, ()) if b != hit.query_box][: config.elsewhere]
            for box in [hit.query_box, *others]:
                found = match_picture(image, scale_box(box, w / ow, h / oh), thumbs[hit.gallery_id],
                                      turned if hit.region_kind in config.turned_kinds else config.template,
                                      config.start)
                if found[0] > correlation:
                    correlation, where = found
                if correlation > config.start:
                    break
            box = None if where is None else scale_box(where, ow / w, oh / h)
            in_card = False
            for card_box, pixels in (cards or {}).get(hit.gallery_id, ()):
                found = match_picture(pixels, (0, 0, *pixels.size), thumbs[hit.gallery_id], config.template, config.start)
                if found[0] > max(correlation, config.start):
                    correlation, box, in_card = found[0], card_box, True
            if correlation > config.start:
                score = hit.score + config.weight * (correlation - config.start)
                if in_card or (copy and hit.region_kind == "residual"):
                    # a card holding the picture, or the query's other source found where its copied picture differs
                    score = max(score, closing(hit.score, correlation, copy_level, config))
                hit = replace(hit, score=score, query_box=box, region_kind="match")
        scored.append(hit)
    checked = {id(h) for h in top}
    rest = [h for h in ranked if id(h) not in checked]
    if copy:  # the residual hits checked beside a copy's first ones come right after them, found or not
        return copy_before_alternatives(sorted(scored, key=lambda h: (-h.score, h.gallery_id)) + rest, copied, parts)
    # a bonus only raises scores: the first hits checked stay above the others, a card's hit takes its place
    return copy_before_alternatives(sorted(scored + rest, key=lambda h: (-h.score, h.gallery_id)), copied, parts)


def copy_before_alternatives(ranked: list[Hit], copied: str | None, parts: Mapping[str, Box]) -> list[Hit]:
    """``ranked`` (a query's hits, best first) with ``copied`` (the gallery id of the picture the query
    copies, or shows under what was pasted on it) above every hit that ``parts`` names except the first
    of each part: its score raised just over theirs.

    That picture is found in the query, so it is one of the query's sources; a part it does not explain
    (``parts``: the gallery ids that residual parts found, by the part's box) holds one more, whose
    look-alikes (the part's second and later hits) must not push it out of the first hits."""
    if copied is None or not parts:
        return ranked
    firsts: set[Box] = set()
    over = -np.inf  # the best score of a part's second or later hit
    for hit in ranked:
        if hit.gallery_id in parts and hit.gallery_id != copied:
            box = parts[hit.gallery_id]
            if box in firsts:
                over = max(over, hit.score)
            firsts.add(box)
    at = next((i for i, h in enumerate(ranked) if h.gallery_id == copied), None)
    if at is None or ranked[at].score > over:
        return ranked
    lifted = replace(ranked[at], score=float(np.nextafter(over, np.inf)))
    return sorted([*ranked[:at], lifted, *ranked[at + 1:]], key=lambda h: (-h.score, h.gallery_id))


def with_rest(ranked: list[Hit], found: list[tuple[Image.Image, list[Hit]]], thumbs: Mapping[str, Image.Image],
              rest: RestConfig, config: VerifyConfig) -> list[Hit]:
    """``ranked`` (best first) with the first ``rest.top`` hits of each rest of the query (:mod:`the rest
    proposer <semcopy_lib.query.proposers.rest>`; ``found``: its crop and its hits) whose picture holds the
    crop (:func:`~semcopy_lib.segment.template.match_crop` at least ``rest.correlation``): such a hit
    closes ``(c - start) / (1 - start)`` of its gap to 1, as a copy's does, and takes its place in
    ``ranked`` by score, in place of that picture's hit when that scored less. Hits without a thumbnail
    in ``thumbs`` are not checked."""
    better: dict[str, Hit] = {}
    for part, hits in found:
        for hit in hits[: rest.top]:
            if hit.gallery_id not in thumbs:
                continue
            correlation = match_crop(part, thumbs[hit.gallery_id], config.template)
            if correlation >= rest.correlation:
                hit = replace(hit, score=closing(hit.score, correlation, 1.0, config))
                if hit.gallery_id not in better or hit.score > better[hit.gallery_id].score:
                    better[hit.gallery_id] = hit
    had = {h.gallery_id: h.score for h in ranked}
    better = {gid: h for gid, h in better.items() if h.score > had.get(gid, -np.inf)}
    out = [h for h in ranked if h.gallery_id not in better]
    for hit in sorted(better.values(), key=lambda h: (-h.score, h.gallery_id)):
        at = next((i for i, h in enumerate(out) if h.score < hit.score), len(out))
        out.insert(at, hit)
    return out


def arbitrated(image: Image.Image, ranked: list[Hit], whole_first: Hit | None, thumbs: Mapping[str, Image.Image],
               config: VerifyConfig, paged: bool = False) -> list[Hit]:
    """``ranked`` (best first), or, when ``image`` is :func:`~semcopy_lib.segment.template.colourless` and
    the whole image's first hit ``whole_first`` is not ``ranked``'s first (nor is that one found by the
    rest of the query, kind ``rest``) but its picture's edges line up better with ``image``'s
    (:func:`~semcopy_lib.segment.template.pixel_evidence` of their
    :func:`~semcopy_lib.segment.template.small_edge_map`) than the first hit's, and at least
    ``config.min_whole``, that hit first (as the whole image's hit), at the first hit's score (so that
    scores still fall down the list), then the others in their order.

    Args:
        image: the query (RGB) at work size; ``image.info["original_size"]`` is its file's size.
        thumbs: thumbnails by gallery id (both hits' are needed, else ``ranked`` is kept).
        paged: the query is a page or a collage (its layout), not one picture: the first hit's edges are
            then compared with those of the part of the query it was found in, since the whole page is
            no picture of the gallery's (a picture a few times smaller than the page hardly shows in
            the page's edge map). A single picture's first hit is compared with the whole query's
            edges, or, when found there at least ``config.near``, inside those around its part
            (:func:`~semcopy_lib.segment.template.edges_near`): a drawing pasted on a grey photo.
    """
    if not ranked or whole_first is None or ranked[0].gallery_id == whole_first.gallery_id:
        return ranked
    first = ranked[0]
    if first.region_kind == "rest":
        return ranked  # its picture holds part of the query pixel for pixel (:func:`with_rest`): more than edges say
    if config.colourless <= 0 or first.gallery_id not in thumbs or whole_first.gallery_id not in thumbs:
        return ranked
    if not colourless(image, config.colourless):
        return ranked
    edges = small_edge_map(image)  # the query's, once for both pictures
    whole_edges, first_edges = (small_edge_map(thumbs[h.gallery_id]) for h in (whole_first, first))
    (ow, oh), (w, h) = image.info["original_size"], image.size
    part = scale_box(first.query_box, w / ow, h / oh)
    if paged:
        first_evidence = pixel_evidence(small_edge_map(crop(image, part)), first_edges, config.edges)
    else:
        first_evidence = pixel_evidence(edges, first_edges, config.edges)
        near = edges_near(image, part, first_edges, config.edges)
        if near >= config.near:
            first_evidence = max(first_evidence, near)
    whole_evidence = pixel_evidence(edges, whole_edges, config.edges)
    if whole_evidence <= first_evidence or whole_evidence < config.min_whole:
        return ranked
    # reported as the whole image's hit (its box and kind): the whole image's edges put it first
    return [replace(whole_first, score=max(whole_first.score, first.score)),
            *(h for h in ranked if h.gallery_id != whole_first.gallery_id)]
