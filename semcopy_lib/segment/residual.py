"""What a matched gallery picture does not explain in a query: the residual of a composite.

A drawing pasted on a photo that the gallery holds makes the whole query a copy of that photo, and its
embedding never sees the drawing. Aligned with the photo (its thumbnail kept in the index), the query
differs from it where something was added: the pasted drawing, a sticker, a caption. Those places are
searched as regions of their own (kind ``residual``).

The alignment is template matching of the whole query's grey levels inside the picture's at a few
scales (a copy may be a crop); the difference is taken after a per-channel gain and offset fitted on
the pixels that agree (a copy may be recoloured or recompressed), with colour blurred as JPEG keeps it
(at half resolution), and thresholded against its own spread. A part must have a solid core and fit
within the query, and the picture is also tried mirrored and turned a little: a copy recompressed,
turned or misaligned by a pixel differs along edges, in lines, not in areas, and a mirrored one
wherever the picture is not symmetric.
When the thumbnail shows something and the picture can be had larger (``detail``, from its gallery
file), the alignment is refined and the difference taken again there: at a thumbnail's 96 pixels a
small drawing's edges blur into the photo's, and a drawing a tenth of the photo's side is too small to
be told from noise. Parts are judged in the thumbnail's units at either size: as many pixels (sharper
pixels resolve a smaller part), as wide and as solid as a share of the picture (an edge missed by the
alignment is a line of the same width at any size).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageOps

from semcopy_lib.data.boxes import Box
from semcopy_lib.data.loading import to_rgb
from semcopy_lib.segment.template import BLANK_STD, halving_search


@dataclass(frozen=True)
class ResidualConfig:
    """Thresholds of :func:`residual_parts`.

    Attributes:
        shares: the query is looked for in the picture as these shares of the picture's longer side ...
        refine: ... then as the best share so far moved either way by each of these in turn (halving
            steps from half the shares' spacing reach every share between them).
        min_alignment: the best alignment's correlation (of grey levels) must reach this, or nothing is
            returned (the query is not this picture, pixel for pixel); or its pixels outside the parts it
            shows must (:func:`_holds_around`): a large drawing pasted on the picture lowers the
            correlation of the whole, not of what it leaves (the parts found with the colour fit on all
            pixels, else on the better half of them: a light card over much of a darker photo bends
            the first until nothing differs).
        chroma: Gaussian sigma (work pixels) applied to both pictures' colour (each pixel's offset from its
            grey) before differencing, their grey kept sharp: JPEG keeps colour at half resolution, so a
            recompressed copy's saturated edges bleed where its grey edges do not.
        blur: Gaussian sigma (work pixels) applied to both before differencing: resampling and JPEG noise.
        shift: a query pixel is compared with the picture's pixels this near (work pixels) to it.
        min_level: a work pixel differs when its largest channel difference is at least this (0-255) ...
        noise_factor: ... and this many times the median difference (the copy's own noise).
        min_area, max_area: a residual part's pixels cover this share of the query at least; its box,
            and all parts' pixels together, at most this share (more is no residual: the alignment is
            wrong, or the query is another picture).
        min_side: ... and is at least this many work pixels wide and high (a thinner one is an edge the
            alignment missed by a pixel, not something pasted) ...
        core, min_core: ... and at least ``min_core`` of the query's area still differs after an
            erosion by a ``core`` x ``core`` square (work pixels): something pasted covers an area, while
            a copy's recompression (colour fringes) and an alignment off by a pixel differ in lines.
        turns: when the upright alignment shows parts, the picture turned by each of these degrees is
            tried at its scale; the best, aligned again, replaces it when it fits better (a copy turned
            a little differs along every edge).
        mirror: when the alignment shows parts, the picture mirrored is tried too (at the alignment's share,
            then aligned again when it fits better there) and replaces it when it fits better: a mirrored
            copy differs wherever the picture is not symmetric.
        pad: each side of a box grows by this share of its size (the difference misses soft edges).
        top: at most this many boxes, largest first.
        inset: a picture found inside a larger query (a screenshot's photo) is compared inset by this
            share of its side on each side, so that the part compared lies within the picture (it is
            placed to a scale step and a work pixel of :func:`~semcopy_lib.segment.template.match_picture`).
        detail_side: the picture's longer side when it is read from its file for the comparison (the
            service's ``detail``; 0: the thumbnail only): twice the thumbnail's, where a small drawing's
            strokes no longer blur into the photo ...
        detail_max_pixels: ... unless it would decode to more pixels than this (a JPEG decodes shrunk):
            a PNG decodes at about 10 ms a megapixel on 2 cores, a 100-Mpx one in seconds ...
        fine: ... where the thumbnail's best share is tried again moved by each of these (finer than
            ``refine``: at more pixels, a coarse scale step misplaces the picture's edges, which then
            differ) ...
        fine_radius: ... within this many pixels of where the thumbnail placed the query.
        closer: the larger picture is read also when the thumbnail shows no part but one that would be
            a part at the larger size (``min_area`` and ``min_core`` as many pixels there): a small drawing
            pasted on a photo blurs into it at thumbnail size.
    """

    shares: tuple[float, ...] = (0.6, 0.7, 0.8, 0.9, 1.0)
    refine: tuple[float, ...] = (0.05, 0.025, 0.0125)
    min_alignment: float = 0.5
    chroma: float = 1.0
    blur: float = 0.5
    shift: int = 1
    min_level: float = 20.0
    noise_factor: float = 4.0
    min_area: float = 0.01
    max_area: float = 0.6
    min_side: int = 4
    core: int = 2
    min_core: float = 0.0025
    turns: tuple[float, ...] = (-9.0, -6.0, -3.0, 3.0, 6.0, 9.0)
    mirror: bool = True
    pad: float = 0.08
    top: int = 2
    inset: float = 0.05
    detail_side: int = 192
    detail_max_pixels: int = 4_000_000
    fine: tuple[float, ...] = (-0.01, -0.005, 0.0, 0.005, 0.01)
    fine_radius: int = 6
    closer: bool = True

    @staticmethod
    def upgrade(data: dict[str, Any]) -> dict[str, Any]:
        """``data`` with a ``refine`` saved as signed offsets from the best share (an index saved before the
        halving search) as the sizes of its steps."""
        data = dict(data)
        refine = data.get("refine")
        if isinstance(refine, list) and any(isinstance(v, (int, float)) and v < 0 for v in refine):
            data["refine"] = sorted({abs(v) for v in refine if isinstance(v, (int, float))}, reverse=True)
        return data


#: BT.601 luma weights of R, G, B: the grey that JPEG keeps at full resolution
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)

#: (correlation, the picture's pixels under the query (H, W, 3), the share, the query's top-left corner
#: as fractions (x, y) of the scaled picture's size)
Alignment = tuple[float, np.ndarray, float, tuple[float, float]]


def _match(query: np.ndarray, picture: Image.Image, share: float,
           near: tuple[tuple[float, float], int] | None = None) -> Alignment | None:
    """The query covering ``share`` of the picture's longer side at its best place, or only within
    ``near`` = ((x, y) as fractions of the scaled picture, radius in pixels) of a corner found before;
    None when the query does not fit."""
    import cv2

    qh, qw = query.shape[:2]
    s = max(qw, qh) / share / max(picture.size)
    pw, ph = round(picture.width * s), round(picture.height * s)
    if pw < qw or ph < qh:
        return None
    scene = np.asarray(picture.resize((pw, ph), Image.BILINEAR), np.float32)
    x0, y0, x1, y1 = 0, 0, pw, ph
    if near is not None:
        (fx, fy), radius = near
        cx, cy = round(fx * pw), round(fy * ph)
        x0, y0, x1, y1 = max(0, cx - radius), max(0, cy - radius), min(pw, cx + qw + radius), min(ph, cy + qh + radius)
        if x1 - x0 < qw or y1 - y0 < qh:
            return None
    # on grey levels (BT.601 luma): a third of the work, and a saturated drawing pasted on a grey photo
    # weighs against the alignment less than on three channels
    scores = cv2.matchTemplate(scene[y0:y1, x0:x1] @ _LUMA, query @ _LUMA, cv2.TM_CCOEFF_NORMED)
    scores = np.nan_to_num(scores, nan=-1.0, posinf=-1.0, neginf=-1.0)
    _, top, _, (x, y) = cv2.minMaxLoc(scores)
    x, y = x + x0, y + y0
    return float(top), scene[y : y + qh, x : x + qw], share, (x / pw, y / ph)


def _align(query: np.ndarray, picture: Image.Image, shares: tuple[float, ...],
           refine: tuple[float, ...], near: tuple[tuple[float, float], int] | None = None) -> Alignment | None:
    """The best of ``shares``, then the best share moved either way by each of ``refine`` in turn (a crop's
    share is seldom one of a few); ``near`` as :func:`_match`'s. None when the query fits at none."""
    def at(share: float) -> tuple[float, Alignment] | None:
        m = _match(query, picture, share, near) if 0 < share <= 1.0 else None
        return (m[0], m) if m is not None else None

    found = halving_search(at, shares, refine)
    return found[2] if found is not None else None


def _shrunk(query: Image.Image, picture: Image.Image, config: ResidualConfig) -> tuple[float, np.ndarray]:
    """(factor, the query (H, W, 3) float32 at the picture's resolution: no larger than the picture at its
    largest share)."""
    f = min(1.0, max(picture.size) * max(config.shares) / max(query.size))
    qw, qh = max(8, round(query.width * f)), max(8, round(query.height * f))
    return f, np.asarray(query.convert("RGB").resize((qw, qh), Image.BILINEAR), np.float32)


def _difference(picture: np.ndarray, query: np.ndarray, shift: int) -> np.ndarray:
    """(H, W): each query pixel's largest channel difference from the closest of the picture's pixels
    within ``shift`` pixels of it (an alignment is good to a pixel, not better)."""
    padded = np.pad(picture, ((shift, shift), (shift, shift), (0, 0)), mode="edge")
    h, w = query.shape[:2]
    best = None
    for dy in range(2 * shift + 1):
        for dx in range(2 * shift + 1):
            d = np.abs(padded[dy : dy + h, dx : dx + w] - query)
            d = np.maximum(np.maximum(d[..., 0], d[..., 1]), d[..., 2])  # numpy reduces a length-3 axis slowly
            best = d if best is None else np.minimum(best, d)
    return best


def _fitted(source: np.ndarray, target: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
    """``source`` (H, W, 3) mapped per channel by the gain and offset that best fit ``target`` on ``keep``."""
    out = np.empty_like(source)
    for c in range(3):
        s, t = source[..., c], target[..., c]
        if keep is not None and keep.sum() > 16:
            s, t = s[keep], t[keep]
        s, t = s.ravel(), t.ravel()
        spread = float(s.var())
        gain = float(((s - s.mean()) * (t - t.mean())).mean() / spread) if spread > 1.0 else 1.0
        out[..., c] = gain * source[..., c] + (float(t.mean()) - gain * float(s.mean()))
    return out


def residual_parts(query: Image.Image, picture: Image.Image, config: ResidualConfig = ResidualConfig(),
                   detail: Callable[[], Image.Image | None] | None = None) -> list[tuple[Box, Image.Image]]:
    """What ``picture`` does not explain in ``query``, largest first: each part's box (x, y, w, h) in
    ``query``'s pixels and its crop (RGBA) transparent where ``picture`` explains the pixels (a drawing
    lifted off the photo: the gallery embeds drawings on white, and those with transparency on grey too).

    Args:
        query: the query (RGB), a copy of ``picture`` with something added.
        picture: the gallery picture (its thumbnail, RGB or RGBA: transparency on white).
        detail: gives the same picture larger (``config.detail_side``, from its file) or None; asked
            when the query aligns with ``picture`` (and, unless ``config.closer``, only when ``picture``
            shows a part). The alignment found on ``picture`` is then refined on it (``config.fine``) and
            the parts are those it shows; when it does not align (a file changed since it was indexed),
            those ``picture`` shows.

    Returns:
        Up to ``config.top`` parts; [] when the query cannot be aligned with the picture or nothing
        (or nearly everything) differs.
    """
    picture = to_rgb(picture)
    # compared at the thumbnail's resolution: the query no larger than the picture at its largest share
    f, small = _shrunk(query, picture, config)
    if float(small.std(axis=(0, 1)).max()) < BLANK_STD:
        return []  # a blank query aligns anywhere
    found = _align(small, picture, config.shares, config.refine)
    if found is None:
        return []
    differs, mask = _differences(small, found[1], config)
    components = _parts(differs, mask, config)
    half = False  # the gain and offset fitted on the better half of the pixels
    if found[0] < config.min_alignment and not _holds_around(small, found[1], components, config):
        # a paste over much of the picture can bend a fit on all pixels until nothing differs
        differs, mask = _differences(small, found[1], config, half=True)
        components = _parts(differs, mask, config)
        if not _holds_around(small, found[1], components, config):
            return []
        half = True
    # no part, but one as small as the larger picture resolves: it may show a part there (upright)
    finer = config.detail_side / max(picture.size)
    closer = (not components and config.closer and detail is not None and finer > 1
              and bool(_parts(differs, mask, config, finer=finer)))
    if not components and not closer:
        return []
    mirrored, angle = False, 0.0
    if components and config.mirror:  # only now, as turns: a copy mirrored differs wherever the picture is not symmetric
        flipped = ImageOps.mirror(picture)
        probe = _match(small, flipped, found[2])
        if probe is not None and probe[0] > found[0]:
            m = _align(small, flipped, config.shares, config.refine)
            if m is not None and m[0] > found[0]:
                picture, found, mirrored = flipped, m, True
                mask, components = _differing(small, found[1], config, half=half)
                if not components:
                    return []
    # only now: few copies' upright alignment shows parts
    turn = _best_turn(query, small, picture, found, config) if components else None
    if turn is not None:
        angle, f, small, found = turn
        mask, components = _differing(small, found[1], config, half=half)
        if not components:
            return []
    larger = detail() if detail is not None else None  # read only now: most copies show nothing at the thumbnail's size
    if larger is not None:
        larger = to_rgb(larger)
        larger = _turned(ImageOps.mirror(larger) if mirrored else larger, angle)
        f_fine, fine_query = _shrunk(query, larger, config)
        fine = _align(fine_query, larger, tuple(found[2] + step for step in config.fine), (),
                      near=(found[3], config.fine_radius))
        if fine is not None:
            fine_differs, fine_mask = _differences(fine_query, fine[1], config, half)
            if fine[0] >= config.min_alignment or _holds_around(fine_query, fine[1],
                                                                _parts(fine_differs, fine_mask, config), config):
                finer = fine_query.shape[1] / small.shape[1]
                return _lifted(query, f_fine, fine_mask, _parts(fine_differs, fine_mask, config, finer, finer), config)
    return _lifted(query, f, mask, components, config)


def _holds_around(small: np.ndarray, under: np.ndarray, components: list[Box], config: ResidualConfig) -> bool:
    """Whether the query (``small``, (H, W, 3)) and the picture's pixels aligned under it (``under``) correlate
    (grey levels) at ``config.min_alignment`` outside ``components``, the boxes of the parts where they
    differ (:func:`_parts`; each grown by ``config.pad``), those boxes leaving at least ``1 - config.max_area``
    of the query: an alignment that a pasted part spoils. False when no part shows."""
    if not components:
        return False
    around = np.ones(small.shape[:2], bool)
    for x, y, w, h in components:
        px, py = round(config.pad * w), round(config.pad * h)
        around[max(0, y - py):y + h + py, max(0, x - px):x + w + px] = False
    if around.mean() < 1 - config.max_area:
        return False
    a, b = (small @ _LUMA)[around], (under @ _LUMA)[around]
    if float(a.std()) < 1e-3 or float(b.std()) < 1e-3:
        return False
    return float(np.corrcoef(a, b)[0, 1]) >= config.min_alignment


def _best_turn(query: Image.Image, small: np.ndarray, picture: Image.Image, upright: Alignment,
               config: ResidualConfig) -> tuple[float, float, np.ndarray, Alignment] | None:
    """(angle, factor, the query shrunk, alignment) of the picture turned by the one of ``config.turns``
    that fits the query (``small``, as shrunk upright) best at the upright alignment's scale (a turned
    copy is the same crop turned, its canvas grown as the turned picture's is), then aligned again at
    every share with the query shrunk to the turned picture; None when it fits no better than ``upright``."""
    # at the upright alignment's scale: the turned picture's canvas is larger by as much as the turned copy's
    tried = [(m[0], turn, turned) for turn in config.turns
             if (m := _match(small, turned := _turned(picture, turn),
                             upright[2] * max(picture.size) / max(turned.size))) is not None]
    if not tried:
        return None
    near, turn, turned = max(tried, key=lambda t: t[0])
    if near <= upright[0]:
        return None  # not even near: a composite's background is upright
    f, small = _shrunk(query, turned, config)
    best = _align(small, turned, config.shares, config.refine)
    return (turn, f, small, best) if best is not None and best[0] > upright[0] else None


def _turned(picture: Image.Image, angle: float) -> Image.Image:
    """``picture`` (RGB) turned ``angle`` degrees counter-clockwise, enlarged to hold it, on white."""
    return picture.rotate(angle, Image.BICUBIC, expand=True, fillcolor=(255, 255, 255)) if angle else picture


def _differing(small: np.ndarray, under: np.ndarray, config: ResidualConfig, scale: float = 1.0,
               finer: float = 1.0, half: bool = False) -> tuple[np.ndarray, list[Box]]:
    """Where the query (``small``, (H, W, 3)) differs from the picture's pixels aligned under it (``under``,
    the same shape): the (H, W) uint8 mask and its parts' boxes in those pixels (:func:`_parts`; ``half``
    as :func:`_differences`')."""
    differs, mask = _differences(small, under, config, half)
    return mask, _parts(differs, mask, config, scale, finer)


def _differences(small: np.ndarray, under: np.ndarray, config: ResidualConfig,
                 half: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(the (H, W) uint8 pixels where the query ``small`` differs from ``under``, the same closed: the mask).
    ``half``: the second fit is on the better half of the pixels (those under the first fit's median
    difference) rather than all within ``noise_factor`` times it: a paste that covers much of the
    picture no longer bends it."""
    import cv2

    qh, qw = small.shape[:2]
    blurred = [cv2.GaussianBlur(_colour_blurred(a, config.chroma), (0, 0), config.blur) for a in (small, under)]
    # two passes: the gain and offset fitted on all pixels, then on those that agree with the first fit
    diff = _difference(_fitted(blurred[1], blurred[0], None), blurred[0], config.shift)
    agree = diff < max(config.min_level, (1.0 if half else config.noise_factor) * float(np.median(diff)))
    diff = _difference(_fitted(blurred[1], blurred[0], agree), blurred[0], config.shift)
    differs = (diff >= max(config.min_level, config.noise_factor * float(np.median(diff)))).astype(np.uint8)
    k = max(3, min(qw, qh) // 30)
    return differs, cv2.morphologyEx(differs, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))


def _parts(differs: np.ndarray, mask: np.ndarray, config: ResidualConfig, scale: float = 1.0,
           finer: float = 1.0) -> list[Box]:
    """The boxes of the parts of ``mask`` (:func:`_differences`), largest first ([] when none, or when
    nearly everything differs).

    ``scale``: these pixels per thumbnail pixel (``config.min_side`` and ``core`` are thumbnail pixels:
    a line the alignment missed is as wide at any size). ``finer``: parts this many times smaller a side
    than ``config.min_area`` and ``min_core`` say count (a larger picture resolves them)."""
    import cv2

    qh, qw = mask.shape
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    area = float(qw * qh)
    if mask.sum() > config.max_area * area:
        return []
    core = max(1, round(config.core * scale))
    solid = cv2.erode(differs, np.ones((core, core), np.uint8)) if core > 1 else differs
    cores = np.bincount(labels[solid > 0], minlength=count)  # each part's solid pixels
    unit = area / finer**2
    return sorted((tuple(int(v) for v in stats[i, :4]) for i in range(1, count)
                   if stats[i, 4] >= config.min_area * unit and min(stats[i, 2:4]) >= config.min_side * scale
                   and stats[i, 2] * stats[i, 3] <= config.max_area * area
                   and cores[i] >= config.min_core * unit),
                  key=lambda b: -b[2] * b[3])


def _colour_blurred(rgb: np.ndarray, sigma: float) -> np.ndarray:
    """``rgb`` (H, W, 3) float32 with each pixel's offset from its grey (BT.601 luma) blurred by ``sigma``
    and the grey kept."""
    import cv2

    if sigma <= 0:
        return rgb
    grey = (rgb @ _LUMA)[..., None]
    return grey + cv2.GaussianBlur(rgb - grey, (0, 0), sigma)


def _lifted(query: Image.Image, f: float, mask: np.ndarray, components: list[Box],
            config: ResidualConfig) -> list[tuple[Box, Image.Image]]:
    """The first ``config.top`` of ``components`` (boxes in the pixels of ``mask``, the query shrunk by
    ``f``) as :func:`residual_parts` gives them: boxes in ``query``'s pixels, crops transparent where
    nothing differs."""
    import cv2

    if not components:
        return []
    # what stays of a crop: the differing pixels and a work pixel around them (soft edges), in file pixels
    keep = Image.fromarray(cv2.dilate(mask, np.ones((3, 3), np.uint8)) * 255).resize(query.size, Image.BILINEAR)
    rgb = query.convert("RGB")
    parts = []
    for x, y, w, h in components[: config.top]:
        px, py = config.pad * w, config.pad * h
        x0, y0 = max(0.0, (x - px) / f), max(0.0, (y - py) / f)
        x1, y1 = min(query.width, (x + w + px) / f), min(query.height, (y + h + py) / f)
        box = (round(x0), round(y0), max(1, round(x1 - x0)), max(1, round(y1 - y0)))
        part = rgb.crop((box[0], box[1], box[0] + box[2], box[1] + box[3])).convert("RGBA")
        part.putalpha(keep.crop((box[0], box[1], box[0] + box[2], box[1] + box[3])))
        parts.append((box, part))
    return parts


def residual_boxes(query: Image.Image, picture: Image.Image, config: ResidualConfig = ResidualConfig(),
                   detail: Callable[[], Image.Image | None] | None = None) -> list[Box]:
    """The boxes of :func:`residual_parts`."""
    return [box for box, _ in residual_parts(query, picture, config, detail)]
