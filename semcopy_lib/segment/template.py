"""Whether a gallery picture is pasted in a query, pixel for pixel: masked template matching.

A clip art pasted on a photo keeps its own pixels, while an embedding of the region around it also
sees the photo, and cannot tell near-twins apart (the green jigsaw piece 12 from 13, a left hand from
a right one, the blue fedora from the red one). The picture's small thumbnail (kept in the index,
:func:`thumbnail`) is slid over the query around the region that found it, at a few scales, and
compared in colour only where the picture is opaque: normalised cross-correlation with a mask
(OpenCV's ``TM_CCOEFF_NORMED``). 1 means the picture's opaque pixels are there, up to brightness and
contrast.

The thumbnail must show the picture's transparency: the mask is what keeps the photo around a pasted
subject out of the comparison.

A query that is itself a copy (a crop, recompressed) is looked for the other way round, inside each
hit's picture (:func:`match_crop`): the embedding of a crop cannot tell a left-pointing callout from
its right-pointing twin, the pixels can.
"""

from __future__ import annotations

import io
import logging
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Callable, Iterable, Mapping, TypeVar

import numpy as np
from PIL import Image

from semcopy_lib.data.boxes import Box
from semcopy_lib.data.loading import ImageLoadError, load_image

log = logging.getLogger(__name__)

#: Thumbnails kept in the index are at most this large (pixels, longer side): 2-6 KB of PNG for clip art.
THUMB_SIDE = 96

#: A query shrunk for a comparison by more than this factor is first averaged by whole blocks of pixels
#: (Pillow's ``reducing_gap``): the resampling filter's work shrinks with it, and from 3 on Pillow finds
#: the result indistinguishable from resampling all of it.
REDUCING_GAP = 3.0


@dataclass(frozen=True)
class TemplateConfig:
    """How pixels are compared (saved with an index as the query config's ``verify.template``).

    Attributes:
        work_side: :func:`match_picture` compares the region with its longer side this many pixels long.
        scales: picture sizes tried, as shares of the region's longer side (a region is seldom the
            exact paste box); a picture with transparency is sized by its opaque pixels' box.
        halvings: ... then the best of them moved either way by half its spacing to the next scale, then
            a quarter, this many halvings (crisp clip art at the work size correlates far less a little
            off its size; docs/benchmarks.md) ...
        refine_from: ... only when the best of the sizes correlates at least this well (a picture that is
            not there gains nothing from finer sizes); -1: always.
        confirm_side: the best place is then compared again with the region's longer side this many
            pixels long (around that place, half the ``margin``, every size again), and the lower
            correlation kept: coarse shapes coincide by chance (a dark suit on a photo's suits), a pasted
            picture holds at twice the detail; 0: not (also only from ``refine_from``).
        margin: the region searched grows by this share of its size on each side.
        opaque: alpha over which a thumbnail pixel is opaque; the opaque part is eroded by one pixel
            (antialiased outlines).
        min_pixels: fewer opaque pixels than this at a scale give no comparison (a hairline drawing).
        crop_shares: :func:`match_crop` looks for a copy inside the picture as these shares of its
            longer side ...
        crop_side: ... with the copy this many pixels long ...
        crop_refine: ... then as the best share so far moved either way by each of these in turn (a
            halving search: a crop's share is seldom one of a few).
        turns: :func:`match_picture` also tries the picture turned by these degrees (then ``halvings``
            halving steps around the best) when upright it stays at or under the caller's bar
            (``confirm_from``): a picture pasted at a slant. (): upright only.
    """

    work_side: int = 40
    scales: tuple[float, ...] = (0.7, 0.8, 0.9, 1.0, 1.1, 1.25)
    halvings: int = 2
    refine_from: float = -1.0
    confirm_side: int = 0
    margin: float = 0.3
    opaque: int = 200
    min_pixels: int = 30
    crop_shares: tuple[float, ...] = (0.6, 0.7, 0.8, 0.9, 1.0)
    crop_side: int = 40
    crop_refine: tuple[float, ...] = (0.05, 0.025)
    turns: tuple[float, ...] = ()


#: A query whose pixels spread less than this in every colour (standard deviation, levels) is blank:
#: nothing to compare (white, or one flat red).
BLANK_STD = 2.0

#: Mean HSV saturation (0-255, at 64 px) under which a picture has no colour (:func:`colourless`: a line
#: drawing, a pencil sketch, a greyscale print); search and dedup then compare its edges.
COLOURLESS = 2.0

#: Share of a picture's grey gradient energy along its main axis under which the energy along the other
#: axis makes it striped (:func:`bands`; many flags): a wide gap on the tuning split of ``bench dedup``
#: (docs/benchmarks.md).
STRIPED = 0.05

#: Queries whose :func:`match_crop` template is kept (:func:`_crop_template`): a search's batch of
#: queries, each checked against its first hits' pictures (a template is 40 px: 20 KB).
CROP_QUERIES = 64

#: Pictures whose :func:`match_picture` templates are kept (:func:`_templates`); a search service's
#: thumbnails are the same objects from query to query. About 130 KB a picture at the default sizes.
TEMPLATE_CACHE = 256


def thumbnail(image: Image.Image) -> bytes:
    """PNG bytes of ``image`` (RGB, or RGBA keeping its transparency) shrunk to :data:`THUMB_SIDE`."""
    small = image.copy()
    small.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.LANCZOS)
    buffer = io.BytesIO()
    small.save(buffer, "PNG", optimize=False)
    return buffer.getvalue()


def read_thumbnail(data: bytes, name: str = "<thumbnail>") -> Image.Image:
    """The image of :func:`thumbnail`'s bytes (RGB or RGBA), decoded by the project's one decoder.

    Raises:
        ImageLoadError: one line naming ``name``: ``data`` does not decode, or holds more pixels than a
            thumbnail can (an index folder is untrusted, so its thumbnails are too).
    """
    return load_image(data, name=name, max_pixels=THUMB_SIDE * THUMB_SIDE, keep_alpha=True)


def read_thumbnails(found: Mapping[str, bytes]) -> dict[str, Image.Image]:
    """:func:`read_thumbnail` of each of ``found`` (PNG bytes by gallery id), leaving out, with a warning
    naming it, any that is no thumbnail: then it is as if missing (a hit without one keeps its score)."""
    images = {}
    for gallery_id, data in found.items():
        try:
            images[gallery_id] = read_thumbnail(data, f"the thumbnail of {gallery_id}")
        except ImageLoadError as exc:
            log.warning("%s (left out)", exc)
    return images


def checked_thumbnails(found: Mapping[str, bytes]) -> dict[str, bytes]:
    """The bytes of those of ``found`` (PNG bytes by gallery id) that :func:`read_thumbnails` decodes,
    for pages and clients that show them as they are: what does not decode is left out, with its
    warning, as if missing."""
    return {gallery_id: found[gallery_id] for gallery_id in read_thumbnails(found)}


def match_picture(query: Image.Image, box: Box, picture: Image.Image,
                  config: TemplateConfig = TemplateConfig(), confirm_from: float = -1.0) -> tuple[float, Box | None]:
    """How well ``picture``'s opaque pixels are found in ``query`` near ``box``, and where (a silhouette,
    opaque pixels of one flat colour, by its shape: see :class:`_Template`).

    Args:
        query: the query (RGB).
        box: (x, y, w, h) in ``query``'s pixels: the region that found ``picture``.
        picture: a gallery thumbnail, RGB or RGBA (:func:`read_thumbnail`).
        confirm_from: only a correlation over this is confirmed at ``config.confirm_side`` (the caller's
            bar: under it the answer counts for nothing, and confirming can only lower it).

    Returns:
        (best correlation in [-1, 1], the picture's box (x, y, w, h) in ``query``'s pixels there), or
        (-1.0, None) when no scale fits.
    """
    import cv2

    x, y, w, h = box
    x0, y0, x1, y1 = _around(box, query.size, config.margin)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return -1.0, None
    f = config.work_side / max(w, h, 1)
    size = (max(1, round((x1 - x0) * f)), max(1, round((y1 - y0) * f)))
    region = np.asarray(query.crop((x0, y0, x1, y1)).convert("RGB").resize(size, Image.BILINEAR, reducing_gap=REDUCING_GAP),
                        np.float32)
    tables = _summed_areas(region)  # the region's, once for every scale's windows
    far: dict[bytes, np.ndarray] = {}  # the region's distance to a silhouette's colour, once per colour

    def scored(made: _Template | None) -> tuple[float, Box] | None:
        if made is None or made.template.shape[1] > region.shape[1] or made.template.shape[0] > region.shape[0]:
            return None
        th, tw = made.template.shape[:2]
        if made.colour is not None:
            key = made.colour.tobytes()
            if key not in far:
                far[key] = np.sqrt(((region - made.colour) ** 2).sum(axis=2))
            scores = cv2.matchTemplate(far[key], made.template, cv2.TM_CCOEFF_NORMED)
        elif made.mask is None:  # the same scores, about four times faster than OpenCV's masked correlation
            scores = cv2.matchTemplate(region, made.template, cv2.TM_CCOEFF_NORMED)
        else:
            scores = cv2.matchTemplate(region, made.template, cv2.TM_CCOEFF_NORMED, mask=made.mask)
        scores = np.nan_to_num(scores, nan=-1.0, posinf=-1.0, neginf=-1.0)
        # a flat window has no correlation (OpenCV gives it 0 unmasked and any value masked)
        scores[_flat_windows(tables, th, tw)] = -1.0
        _, top, _, (px, py) = cv2.minMaxLoc(scores)
        return float(top), (x0 + round(px / f), y0 + round(py / f), round(tw / f), round(th / f))

    shown, made = _templates(picture, config)
    kept = dict(zip(config.scales, made))
    drawn: list[Image.Image] = []  # the picture cut to its drawing, once halving steps or turns need it

    def cut() -> Image.Image:
        if not drawn:
            drawn.append(picture.crop(shown) if shown else picture)
        return drawn[0]

    def at(scale: float) -> tuple[float, Box] | None:
        return scored(kept[scale]) if scale in kept else scored(_template(cut(), scale, config))

    found = halving_search(at, config.scales, lambda best: _halving_steps(config.scales, best, config.halvings),
                           refine_from=config.refine_from)
    if found is None:
        return -1.0, None
    correlation, where = found[0], found[2]
    correlation = _confirmed(query, correlation, where, picture, config, confirm_from)
    if config.turns and correlation <= confirm_from:
        turned = _turned_match(cut(), found[1], config, scored)
        if turned is not None:
            at_turn = _confirmed(query, turned[0], turned[1], turned[2], config, confirm_from)
            if at_turn > correlation:
                correlation, where = at_turn, turned[1]
    return correlation, where


def _confirmed(query: Image.Image, correlation: float, where: Box, picture: Image.Image, config: TemplateConfig,
               confirm_from: float) -> float:
    """``correlation`` (of ``picture`` found at ``where`` in ``query``), or the lower correlation there at
    ``config.confirm_side`` when the config confirms it (:func:`match_picture`)."""
    if config.confirm_side and correlation >= config.refine_from and correlation > confirm_from:
        finer = replace(config, work_side=config.confirm_side, margin=config.margin / 2, confirm_side=0, turns=())
        correlation = min(correlation, match_picture(query, where, picture, finer)[0])
    return correlation


def _turned_match(drawn: Image.Image, scale: float, config: TemplateConfig,
                  scored: Callable[[_Template | None], tuple[float, Box] | None]) -> tuple[float, Box, Image.Image] | None:
    """The best of ``drawn`` (a picture cut to its drawing) turned by one of ``config.turns`` degrees at
    ``scale`` (where it was found best upright), then at that angle every scale (``config.scales`` and
    halving steps: a turned picture is sized by what shows), then at that scale the angle moved by
    halving steps: (correlation, box, the turned picture cut to what shows), None when nothing fits.
    ``scored`` compares a template with the query's region (:func:`match_picture`)."""
    pictures: dict[float, Image.Image] = {}
    found: dict[tuple[float, float], tuple[float, Box] | None] = {}  # each (angle, size) compared once
    upright = drawn.convert("RGBA")  # once, for every angle

    def turned(angle: float) -> Image.Image:
        if angle not in pictures:
            rgba = upright.rotate(angle, resample=Image.BICUBIC, expand=True)
            box = _opaque_box(rgba, config.opaque)
            pictures[angle] = rgba.crop(box) if box else rgba
        return pictures[angle]

    def at(angle: float, size: float) -> tuple[float, Box] | None:
        if (angle, size) not in found:
            found[angle, size] = scored(_template(turned(angle), size, config))
        return found[angle, size]

    by_angle = halving_search(lambda a: at(a, scale), config.turns, ())
    if by_angle is None:
        return None
    angle = by_angle[1]
    by_size = halving_search(lambda s: at(angle, s), config.scales,
                             lambda best: _halving_steps(config.scales, best, config.halvings))
    if by_size is not None and by_size[0] > by_angle[0]:
        scale = by_size[1]
    best = halving_search(lambda a: at(a, scale), (angle,), _halving_steps(config.turns, angle, config.halvings))
    return (best[0], best[2], turned(best[1])) if best is not None else None


Found = TypeVar("Found")


def halving_search(score: Callable[[float], tuple[float, Found] | None], grid: Iterable[float],
                   steps: Iterable[float] | Callable[[float], Iterable[float]],
                   refine_from: float = -1.0) -> tuple[float, float, Found] | None:
    """(value, x, what ``score(x)`` found) of the best x of ``grid`` (the first of equals), then that x moved
    either way by each of ``steps`` in turn, kept when better: a halving search (a size or a share is
    seldom one of a few). ``score`` gives (value, what it found), or None where nothing fits; a value of
    -1 or less (a correlation's floor) never wins. ``steps``: the steps, or a function of the grid's best
    x that gives them; taken only when the grid's best value reaches ``refine_from``. None when nothing
    scored over -1."""
    best: tuple[float, float, Found] | None = None
    for x in grid:
        got = score(x)
        if got is not None and got[0] > (best[0] if best is not None else -1.0):
            best = (got[0], x, got[1])
    if best is None or best[0] < refine_from:
        return best
    for step in steps(best[1]) if callable(steps) else steps:
        centre = best[1]
        for x in (centre - step, centre + step):
            got = score(x)
            if got is not None and got[0] > best[0]:
                best = (got[0], x, got[1])
    return best


@dataclass(frozen=True)
class _Template:
    """A picture at one of :class:`TemplateConfig`'s scales: ``template`` (h, w, 3) float32 RGB, ``mask``
    (h, w) float32 of its opaque pixels, None when all are opaque.

    A silhouette (transparent around opaque pixels of one flat colour, which no masked correlation can
    compare) has its ``colour`` (3,) float32, and ``template`` (h, w) float32 is then its transparency
    (0 opaque, 1 transparent), correlated with a region's distance from that colour: the shape is what
    it shows."""

    template: np.ndarray
    mask: np.ndarray | None
    colour: np.ndarray | None = None


#: (the picture, weakly; (its opaque pixels' box (left, top, right, bottom) or None, its templates)) by key
_TEMPLATES: OrderedDict[tuple, tuple[weakref.ref, tuple[tuple[int, int, int, int] | None, list[_Template | None]]]] = OrderedDict()
_TEMPLATES_LOCK = threading.RLock()  # re-entrant: a picture's finalizer may run while the lock is held

Kept = TypeVar("Kept")


def _kept_while_alive(cache: OrderedDict, key, owner: object, make: Callable[[], Kept], limit: int) -> Kept:
    """``make()``, kept in ``cache`` under ``key`` while ``owner`` lives (weakly: what ``make`` gives must not
    hold ``owner``), for the ``limit`` keys used last: what is made from a thumbnail or a query once, for
    the many comparisons it is in."""
    with _TEMPLATES_LOCK:
        kept = cache.get(key)
        if kept is not None and kept[0]() is owner:
            cache.move_to_end(key)
            return kept[1]
    value = make()
    with _TEMPLATES_LOCK:
        cache[key] = (weakref.ref(owner, _forgetter(cache, key)), value)
        while len(cache) > limit:
            cache.popitem(last=False)
    return value


def _forgetter(cache: OrderedDict, key, lock=_TEMPLATES_LOCK) -> Callable[[weakref.ref], None]:
    """A weak reference's callback that drops what was kept for its dead owner; it holds what it uses, as
    it may run while the interpreter exits, after this module's names are cleared."""
    def forget(_: weakref.ref) -> None:
        with lock:
            kept = cache.get(key)
            if kept is not None and kept[0]() is None:
                del cache[key]
    return forget


def _halving_steps(scales: tuple[float, ...], best: float, halvings: int) -> list[float]:
    """The steps of a halving search around ``best`` (one of ``scales``): half its distance to the nearest
    other scale, then a quarter, ``halvings`` of them; none when ``scales`` has one size."""
    spacing = min((abs(s - best) for s in scales if s != best), default=0.0)
    return [spacing / 2 ** (i + 1) for i in range(halvings)] if spacing > 0 else []


def _templates(picture: Image.Image, config: TemplateConfig) -> tuple[tuple[int, int, int, int] | None,
                                                                       list[_Template | None]]:
    """(the box (left, top, right, bottom) of ``picture``'s opaque pixels, None when it has no transparency
    or none is opaque; the picture (RGB or RGBA) cut to that box at each of ``config.scales`` as
    :func:`match_picture` compares it (:func:`_template`)), kept for the :data:`TEMPLATE_CACHE` pictures
    used last while each lives: the same thumbnail is checked against query after query. ``picture`` must
    not be changed in place afterwards."""
    key = (id(picture), picture.size, picture.mode, config.work_side, config.scales, config.opaque, config.min_pixels)

    def made() -> tuple[tuple[int, int, int, int] | None, list[_Template | None]]:
        # the scales are the drawing's: a region's box bounds what shows, not a transparent margin
        shown = _opaque_box(picture, config.opaque) if "A" in picture.getbands() else None
        drawn = picture.crop(shown) if shown else picture
        return shown, [_template(drawn, scale, config) for scale in config.scales]  # the box, not the cut picture

    return _kept_while_alive(_TEMPLATES, key, picture, made, TEMPLATE_CACHE)


def _opaque_box(picture: Image.Image, opaque: int) -> tuple[int, int, int, int] | None:
    """The box (left, top, right, bottom) of ``picture``'s (RGBA) pixels whose alpha is over ``opaque``;
    None when there are none."""
    return picture.getchannel("A").point(_over(opaque)).getbbox()


@lru_cache(maxsize=16)
def _over(level: int) -> tuple[int, ...]:
    """The 256-entry lookup table of alpha over ``level`` (255) or not (0): built once, not for every
    picture (a lambda is called 256 times a picture)."""
    return tuple(255 if a > level else 0 for a in range(256))


def _template(drawn: Image.Image, scale: float, config: TemplateConfig) -> _Template | None:
    """``drawn`` (RGB or RGBA) with its longer side ``scale`` x ``config.work_side`` pixels, as
    :func:`match_picture` compares it; None: too few opaque pixels there, or a flat opaque picture, which
    no window is compared with."""
    import cv2

    s = config.work_side * scale / max(drawn.size)
    tw, th = max(4, round(drawn.width * s)), max(4, round(drawn.height * s))
    small = drawn.resize((tw, th), Image.BILINEAR)
    alpha = np.asarray(small.getchannel("A")) if "A" in small.getbands() else np.full((th, tw), 255, np.uint8)
    mask = cv2.erode((alpha > config.opaque).astype(np.uint8), np.ones((3, 3), np.uint8))
    template = np.asarray(small.convert("RGB"), np.float32)
    opaque = template[mask > 0]
    if int(mask.sum()) < config.min_pixels or (mask.all() and float(template.std(axis=(0, 1)).max()) < BLANK_STD):
        return None  # unmasked, OpenCV would call a flat picture a perfect match anywhere
    if not mask.all() and float(opaque.std(axis=0).max()) < BLANK_STD:
        return _Template(1.0 - alpha.astype(np.float32) / 255.0, None, opaque.mean(axis=0))
    return _Template(template, None if mask.all() else mask.astype(np.float32))


_MIRRORS: OrderedDict[int, tuple[weakref.ref, Image.Image]] = OrderedDict()


def _mirrored(picture: Image.Image) -> Image.Image:
    """``picture`` mirrored left to right, the same object while ``picture`` lives (for the
    :data:`TEMPLATE_CACHE` pictures mirrored last): its templates are then made once too
    (:func:`_templates`), as a thumbnail is compared mirrored with one picture after another. ``picture``
    must not be changed in place afterwards."""
    from PIL import ImageOps

    return _kept_while_alive(_MIRRORS, id(picture), picture, lambda: ImageOps.mirror(picture), TEMPLATE_CACHE)


def _around(box: Box, size: tuple[int, int], margin: float) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): ``box`` (x, y, w, h) grown by ``margin`` of its size on each side, within an
    image of ``size`` (w, h): where a picture found by that region is looked for."""
    x, y, w, h = box
    return (max(0, int(x - margin * w)), max(0, int(y - margin * h)),
            min(size[0], int(x + w * (1 + margin))), min(size[1], int(y + h * (1 + margin))))


def _summed_areas(region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Summed-area tables (H + 1, W + 1, C) of ``region`` (H, W, C) and of its squares, in float64."""
    import cv2

    sums, squares = cv2.integral2(region.astype(np.float64), sdepth=cv2.CV_64F, sqdepth=cv2.CV_64F)
    return tuple(t.reshape(t.shape[0], t.shape[1], -1) for t in (sums, squares))


def _flat_windows(tables: tuple[np.ndarray, np.ndarray], h: int, w: int) -> np.ndarray:
    """(H - h + 1, W - w + 1) bool: the h x w windows of a region, given its :func:`_summed_areas`,
    whose pixels spread less than :data:`BLANK_STD` in every channel."""
    sums, squares = tables

    def window(t: np.ndarray) -> np.ndarray:
        return t[h:, w:] - t[:-h, w:] - t[h:, :-w] + t[:-h, :-w]

    n = float(h * w)
    variance = window(squares) / n - (window(sums) / n) ** 2
    return variance.max(axis=2) < BLANK_STD**2


def match_crop(query: Image.Image, picture: Image.Image, config: TemplateConfig = TemplateConfig()) -> float:
    """How well the whole ``query`` is found inside ``picture``: the other way round from
    :func:`match_picture`, for a query that is a copy (a crop, recompressed) of a gallery picture.

    The query, ``config.crop_side`` pixels long, is slid over the picture (its thumbnail, on white) shrunk
    so that the query covers each of ``config.crop_shares`` of its longer side, and the best normalised
    cross-correlation is kept. A mirrored twin (a left-pointing callout for a right-pointing one, a
    jigsaw piece with its tabs elsewhere, a flag with the same colours in another order) correlates
    far less than the picture the crop came from.

    Args:
        query: the query (RGB).
        picture: a gallery thumbnail, RGB or RGBA (:func:`read_thumbnail`).

    Returns:
        The best correlation in [-1, 1]; -1.0 when no share fits.
    """
    import cv2

    from semcopy_lib.data.loading import to_rgb

    template = _crop_template(query, config.crop_side)
    if template is None:
        return -1.0

    def at(share: float) -> tuple[float, None] | None:  # the best correlation with the query covering ``share``
        if share <= 0:
            return None
        s = config.crop_side / share / max(picture.size)
        pw, ph = max(4, round(picture.width * s)), max(4, round(picture.height * s))
        if template.shape[1] > pw or template.shape[0] > ph:
            return None
        scene = np.asarray(to_rgb(picture.resize((pw, ph), Image.BILINEAR)), np.float32)
        scores = cv2.matchTemplate(scene, template, cv2.TM_CCOEFF_NORMED)
        return float(np.nan_to_num(scores, nan=-1.0, posinf=-1.0, neginf=-1.0).max()), None

    # the larger share first: of equal correlations, the share where the query covers more of the picture is kept
    found = halving_search(at, sorted(config.crop_shares, reverse=True), config.crop_refine)
    return found[0] if found is not None else -1.0


_CROP_TEMPLATES: OrderedDict[tuple[int, int], tuple[weakref.ref, np.ndarray | None]] = OrderedDict()


def _crop_template(query: Image.Image, side: int) -> np.ndarray | None:
    """:func:`match_crop`'s template of ``query``: (h, w, 3) float32 with the longer side ``side``, or None
    for a blank query (it correlates with nothing; OpenCV calls a flat template a perfect match). Kept
    while ``query`` lives, for the queries used last: a query is looked for in several hits' pictures, and
    shrinking a large one is most of a check. ``query`` must not be changed in place afterwards."""

    def made() -> np.ndarray | None:
        f = side / max(query.size)
        small = query.convert("RGB").resize((max(4, round(query.width * f)), max(4, round(query.height * f))),
                                            Image.BILINEAR)
        template = np.asarray(small, np.float32)
        return None if float(template.std(axis=(0, 1)).max()) < BLANK_STD else template  # a colour at a time

    return _kept_while_alive(_CROP_TEMPLATES, (id(query), side), query, made, CROP_QUERIES)


def pixel_evidence(a: Image.Image, b: Image.Image, config: TemplateConfig) -> float:
    """How well one picture's pixels are found in the other (either way round, and mirrored): the best
    correlation of :func:`match_picture` over the four, in [-1, 1], i.e. the better of
    :func:`found_in` both ways. Both are small (thumbnails)."""
    return max(found_in(b, a, config), found_in(a, b, config))


def found_in(picture: Image.Image, query: Image.Image, config: TemplateConfig) -> float:
    """How well ``picture`` (upright or mirrored) is found anywhere in ``query`` (any mode; a thumbnail):
    the better correlation of :func:`match_picture` of the two, in [-1, 1]. Comparing one picture with
    many queries in a row makes its templates once (:func:`_templates`)."""
    from semcopy_lib.data.loading import to_rgb

    rgb = to_rgb(query)
    return max(match_picture(rgb, (0, 0, *rgb.size), shown, config)[0] for shown in (picture, _mirrored(picture)))


def edges_near(query: Image.Image, box: Box, picture_edges: Image.Image, config: TemplateConfig) -> float:
    """How well a picture's edges are found in ``query``'s around ``box`` (one way: the picture inside
    the query, upright or mirrored): the best correlation of :func:`match_picture` in [-1, 1].

    Args:
        query: the query (RGB).
        box: (x, y, w, h) in ``query``'s pixels: the region that found the picture.
        picture_edges: the picture's :func:`small_edge_map`.
    """
    x, y, w, h = box
    x0, y0, x1, y1 = _around(box, query.size, config.margin)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return -1.0
    # the box's longer side at match_picture's work side, so that the edges are as thick as a thumbnail's
    f = config.work_side / max(w, h, 1)
    around = query.crop((x0, y0, x1, y1)).resize((max(4, round((x1 - x0) * f)), max(4, round((y1 - y0) * f))),
                                                 Image.BILINEAR, reducing_gap=REDUCING_GAP)
    edges, inside = edge_map(around), ((x - x0) * f, (y - y0) * f, w * f, h * f)
    return max(match_picture(edges, inside, picture, config)[0]
               for picture in (picture_edges, _mirrored(picture_edges)))


def edge_map(image: Image.Image) -> Image.Image:
    """Where ``image`` (any mode; transparency on white) changes: the gradient magnitude of its grey,
    smoothed and scaled to its maximum, as RGB. A line drawing or pencil sketch keeps its source's edges
    and nothing of its colours, so the two have the same edge map."""
    from PIL import ImageFilter

    from semcopy_lib.data.loading import to_rgb

    grey = np.asarray(to_rgb(image).convert("L").filter(ImageFilter.GaussianBlur(1)), np.float32)
    gx, gy = np.zeros_like(grey), np.zeros_like(grey)
    gx[:, 1:-1] = grey[:, 2:] - grey[:, :-2]
    gy[1:-1] = grey[2:] - grey[:-2]
    magnitude = np.hypot(gx, gy)
    magnitude *= 255.0 / max(1e-6, float(magnitude.max()))
    return Image.fromarray(magnitude.astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.5)).convert("RGB")


def colourless(image: Image.Image, level: float = COLOURLESS) -> bool:
    """True when ``image`` (any mode) has no colour: its mean HSV saturation (0-255) at 64 px is under ``level``."""
    small = np.asarray(image.convert("RGB").resize((64, 64), Image.BICUBIC, reducing_gap=REDUCING_GAP).convert("HSV"))
    return float(small[..., 1].mean()) < level


def bands(image: Image.Image, level: float = STRIPED) -> int:
    """How many bands ``image`` (any mode; transparency on white) is made of when it changes along one axis
    only (horizontal or vertical stripes: its grey's squared differences across one axis sum to under
    ``level`` of those across the other), else 0. A band ends where its colour profile steps by more than
    a quarter of its largest step (an antialiased edge is one step, JPEG noise none). Any window of a
    striped picture lines up with a crop of another with fewer bands (Poland's flag inside Serbia and
    Montenegro's), so the number of bands tells them apart where pixels cannot."""
    from semcopy_lib.data.loading import to_rgb

    rgb = np.asarray(to_rgb(image), np.float32)
    grey = rgb.mean(axis=2)
    across, down = float((np.diff(grey, axis=1) ** 2).sum()), float((np.diff(grey, axis=0) ** 2).sum())
    if not min(across, down) < level * max(across, down):
        return 0
    profile = rgb.mean(axis=1) if across < down else rgb.mean(axis=0)  # (length, 3) along the changing axis
    step = np.abs(np.diff(profile, axis=0)).max(axis=1)
    change = step > 0.25 * step.max()
    return 1 + int(change[0]) + int(np.count_nonzero(change[1:] & ~change[:-1]))


def small_edge_map(image: Image.Image) -> Image.Image:
    """:func:`edge_map` of ``image`` shrunk to a thumbnail (:data:`THUMB_SIDE`): two of them compared by
    :func:`pixel_evidence` say whether one picture is drawn from the other; made once for an image
    compared with several pictures."""
    small = image.copy()
    small.thumbnail((THUMB_SIDE, THUMB_SIDE))
    return edge_map(small)
