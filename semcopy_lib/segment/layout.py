"""Where the photos are in a query: recursive XY-cuts on gutters and seams, then a photo test per block.

A web page is laid out in blocks separated by uniform strips (margins, gutters, line spacing); a
collage is tiles separated by uniform gutters or by straight seams where one photo touches the next.
Both are cut recursively (XY-cut, Nagy & Seth 1984) on

- *gutters*: rows/columns whose colour is uniform across the block, and
- *seams*: a row/column where the colour jumps for most of the block's length (touching tiles),

and each leaf block, trimmed of uniform borders, is a photo when it is large enough and has the colour
variety of a picture rather than of text on a flat background. The image is analysed at most
``BlocksConfig.work_side`` pixels large; boxes are returned in the pixels of the image given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.ndimage import maximum_filter, median_filter

from semcopy_lib.data.boxes import Box

@dataclass(frozen=True)
class BlocksConfig:
    """Thresholds of the XY-cut (:func:`find_blocks`); saved with an index as the query config's
    ``layout.blocks``. Colour distances are summed |dRGB| (0-765).

    Attributes:
        work_side: the image is analysed at most this many pixels on its longer side.
        uniform_range: most spread (p95 - p5, summed over RGB) of a gutter strip or a flat box.
        gutter_tolerance: distance from the background under which a gutter pixel is background.
        gutter_off_share: share of a gutter strip's pixels allowed off the background (JPEG ringing).
        frame_step: colour step between a block's frame and its surroundings that makes it a framed
            container (and under which two bands have alike colours).
        seam_jump: colour jump across a seam ...
        seam_quantile: ... at this quantile of the jumps along the boundary (0.25: the jump holds along
            75 % of it; a row of equal cards is no seam).
        same_picture_overlap: colour-histogram overlap above which both sides of an edge are one picture.
        stripe: a band between two jumps at most this share of a block long, alike beyond both, is no seam.
        min_piece: a seam split keeps at least this share of the block on each side.
        flat_band_std: summed per-channel std under which a band is a flat page area.
        min_photo_side: a photo is at least this share of the image's shorter side.
        min_edge_fraction: share of a photo block's pixels on an edge (less: a flat area).
        cross_side: a strip of the enclosing background this far inside a block splits it into cards.
        inner_share: a photo under this share of the framed block holding it is a box of its own too.
        rect_side: share of each side of a rectangle that must lie on an edge.
        max_aspect: a block longer than this many times its width is a text paragraph, not a picture.
    """

    work_side: int = 512
    uniform_range: float = 24.0
    gutter_tolerance: float = 16.0
    gutter_off_share: float = 0.005
    frame_step: float = 24.0
    seam_jump: float = 40.0
    seam_quantile: float = 0.25
    same_picture_overlap: float = 0.6
    stripe: float = 0.12
    min_piece: float = 0.05
    flat_band_std: float = 12.0
    min_photo_side: float = 0.08
    min_edge_fraction: float = 0.01
    cross_side: float = 0.15
    inner_share: float = 0.85
    rect_side: float = 0.8
    max_aspect: float = 5.0


#: The defaults, for callers without a config of their own.
BLOCKS = BlocksConfig()

def channel_sum(x: np.ndarray) -> np.ndarray:
    """``x.sum(axis=-1)`` over RGB, written out: numpy reduces a length-3 last axis slowly."""
    return x[..., 0] + x[..., 1] + x[..., 2]


def _background(block: np.ndarray, config: BlocksConfig = BLOCKS) -> np.ndarray | None:
    """The colour most of the block's one-pixel frame shares (a page or gutter colour), else None."""
    frame = np.concatenate([block[0], block[-1], block[:, 0], block[:, -1]])
    med = np.median(frame, axis=0).astype(block.dtype)  # float64 would make every difference with it float64
    close = channel_sum(np.abs(frame - med)) <= config.uniform_range
    return med if close.mean() >= 0.5 else None


def _crossed(block: np.ndarray, colour: np.ndarray | None, config: BlocksConfig = BLOCKS) -> bool:
    """Whether ``block`` is split by a run of rows or columns all of ``colour`` (the enclosing
    background) with a good part of the block on each side: a column of cards whose borders make
    most of its frame, not one framed picture."""
    off = _off_background(block, colour, config)
    if off is None:
        return False
    for axis in (0, 1):
        n = block.shape[axis]
        if any(start >= config.cross_side * n and end <= (1 - config.cross_side) * n
               for start, end in _runs(_uniform_strips(off, axis, n, config))):
            return True
    return False


def _off_background(block: np.ndarray, background: np.ndarray | None, config: BlocksConfig = BLOCKS) -> np.ndarray | None:
    """(H, W) bool: pixels off the block's background colour (None without one), for both cut axes."""
    if background is None:
        return None
    return channel_sum(np.abs(block - background)) > config.gutter_tolerance


def _uniform_strips(off: np.ndarray | None, axis: int, n: int, config: BlocksConfig = BLOCKS) -> np.ndarray:
    """Bool per row (axis=0) or column (axis=1): is that strip of the background colour all along.

    Only strips of the block's background colour are gutters: a uniform strip of another colour is
    usually part of a picture (a white wall, a dark sky). A gutter may hold a few off pixels (JPEG
    ringing) but no faint card: nearly every pixel is the background (``off`` from :func:`_off_background`).
    """
    if off is None:
        return np.zeros(n, dtype=bool)
    # the share of off pixels, as ``off.mean(axis)`` (which converts the booleans to floats: slower)
    return np.count_nonzero(off, axis=1 - axis) / off.shape[1 - axis] <= config.gutter_off_share


def _jumps(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Summed |dRGB| between neighbouring rows (H-1, W) and columns (H, W-1). A sub-block's jumps are a
    slice of its parent's (see :func:`_slice`), so they are computed once per image. (OpenCV's absolute
    difference: numpy's ``abs(diff(...))`` gives the same numbers at twice the time.)"""
    import cv2

    def absdiff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return cv2.absdiff(a, b) if a.size else np.abs(a - b)  # (OpenCV returns nothing for no pixels)

    return channel_sum(absdiff(img[1:], img[:-1])), channel_sum(absdiff(img[:, 1:], img[:, :-1]))


def _slice(jumps: tuple[np.ndarray, np.ndarray], axis: int, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """The jumps of the sub-block [a, b) along ``axis`` of the block whose jumps are ``jumps``."""
    rows, cols = jumps
    if axis == 0:
        return rows[a : b - 1], cols[a:b]
    return rows[:, a:b], cols[:, a : b - 1]


def _seams(block: np.ndarray, axis: int, jumps: tuple[np.ndarray, np.ndarray] | None = None,
           config: BlocksConfig = BLOCKS) -> list[int]:
    """Positions i where strip i and i+1 differ along most of the block (touching tiles).

    ``jumps``: the block's :func:`_jumps`, when already known."""
    n = block.shape[axis]
    if n < 8:
        return []
    jump = (jumps or _jumps(block))[axis]  # (n-1, L) or (L, n-1)
    along = jump.shape[1 - axis]
    k = int(config.seam_quantile * (along - 1))
    med = np.partition(jump, k, axis=1 - axis).take(k, axis=1 - axis)  # per boundary: the jump along most of it
    # a jump smeared over two neighbouring boundaries by resampling counts once, where it is largest
    joint = np.maximum(med, np.maximum(np.r_[med[1:], 0] + med, np.r_[0, med[:-1]] + med))
    local = median_filter(joint, size=15, mode="nearest")
    peak = med >= maximum_filter(med, size=3, mode="nearest")
    strong = np.flatnonzero((joint >= config.seam_jump) & (joint >= 3 * local + 1e-6) & peak).tolist()
    # two jumps a few pixels apart are a drawn line (mortar, a frame) inside one picture, not a seam
    lone = [i for i in strong if not any(1 < abs(i - j) <= 4 for j in strong)]
    lo, hi = n * config.min_piece, n * (1 - config.min_piece)
    band = max(4, n // 20)
    out = []
    for i in lone:
        cut = i + 1  # cut before strip i+1
        if lo <= cut <= hi and band <= cut <= n - band:
            a = block[cut - band : cut] if axis == 0 else block[:, cut - band : cut]
            b = block[cut : cut + band] if axis == 0 else block[:, cut : cut + band]
            flat = min(float(a.std(axis=(0, 1)).sum()), float(b.std(axis=(0, 1)).sum())) < config.flat_band_std
            # two textured sides with alike colours are one picture with a straight edge in it
            if flat or _histogram_overlap(a, b) < config.same_picture_overlap:
                out.append(cut)
    # the two edges of a band of colour across one picture (a flag's cross) are no seams either
    return [cut for cut in out if not _stripe(block, axis, cut, [j + 1 for j in strong], band, config)]


def _stripe(block: np.ndarray, axis: int, cut: int, others: list[int], band: int,
            config: BlocksConfig = BLOCKS) -> bool:
    """Whether the jump at ``cut`` is one edge of a narrow stripe (the cross of a flag, a band of
    colour) that runs across one picture: another jump within ``config.stripe`` of the block's length with
    alike colours beyond both edges."""
    n = block.shape[axis]
    for other in others:
        lo, hi = min(cut, other), max(cut, other)
        if 0 < hi - lo <= config.stripe * n and lo - band >= 0 and hi + band <= n:
            a = block[lo - band : lo] if axis == 0 else block[:, lo - band : lo]
            b = block[hi : hi + band] if axis == 0 else block[:, hi : hi + band]
            same_colour = float(np.abs(np.median(a.reshape(-1, 3), 0) - np.median(b.reshape(-1, 3), 0)).sum()) <= config.frame_step
            if same_colour and _histogram_overlap(a, b) >= config.same_picture_overlap:
                return True
    return False


def _histogram_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection of the 8x8x8-bin colour histograms of two pixel sets, in [0, 1]."""

    def hist(x: np.ndarray) -> np.ndarray:
        q = (x.reshape(-1, 3) // 32).astype(np.int64)
        h = np.bincount(q[:, 0] * 64 + q[:, 1] * 8 + q[:, 2], minlength=512).astype(np.float64)
        return h / max(1.0, h.sum())

    return float(np.minimum(hist(a), hist(b)).sum())


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[(start, end)) runs of True."""
    out, start = [], None
    for i, f in enumerate(flags):
        if f and start is None:
            start = i
        elif not f and start is not None:
            out.append((start, i))
            start = None
    if start is not None:
        out.append((start, len(flags)))
    return out


def _pieces(n: int, gutter: np.ndarray, seams: list[int], min_len: int) -> list[tuple[int, int]]:
    """Split [0, n) by removing gutter runs and cutting at seams; drop pieces shorter than min_len."""
    keep = ~gutter
    spans = _runs(keep)
    out = []
    for a, b in spans:
        cuts = [a] + [s for s in seams if a < s < b] + [b]
        out += [(c, d) for c, d in zip(cuts, cuts[1:]) if d - c >= min_len]
    return out


def xy_cut(
    img: np.ndarray,
    min_len: int,
    depth: int = 0,
    max_depth: int = 8,
    background: np.ndarray | None = None,
    is_photo: Callable[[np.ndarray], bool] | None = None,
    page: np.ndarray | None = None,
    _off: np.ndarray | None = None,
    _jumps_of: tuple[np.ndarray, np.ndarray] | None = None,
    config: BlocksConfig = BLOCKS,
) -> list[Box]:
    """Leaf blocks of a recursive XY-cut of ``img`` (H, W, 3) float, as (x, y, w, h).

    ``background`` is the enclosing block's gutter colour, used when this block's frame is mixed
    (a row of tiles has photo pixels on two sides of its frame and gutter on the other two).
    A block framed in a colour of its own (a picture with a white margin on a dark page, a figure
    with a border) that holds a photo is returned whole when ``is_photo`` is given: cutting inside
    it would split the picture along its own margins. The photos found inside it are returned as well
    when they are less than ``config.inner_share`` of it (a panel or a card holding a picture and text).
    ``page`` is the outermost background: a shadow fades from the page colour to a white picture in
    steps each too small to see as a frame.
    """
    h, w = img.shape[:2]
    own = _background(img, config)

    def differs(colour: np.ndarray | None) -> bool:
        return colour is not None and float(np.abs(own - colour).sum()) > config.frame_step

    framed = depth > 0 and own is not None and (differs(background) or differs(page))
    if framed and _crossed(img, background, config):
        # the "frame" is the borders of cards standing on the enclosing background: cut on that
        framed, own = False, None
    inherited = background
    background = own if own is not None else background
    page = page if page is not None else background
    # computed once for both axes; the parent's, sliced, when this block has the same background
    same = _off is not None and inherited is not None and np.array_equal(background, inherited)
    off = _off if same else _off_background(img, background, config)
    jumps = _jumps_of if _jumps_of is not None else _jumps(img)
    for axis in (0, 1) if depth % 2 == 0 else (1, 0):
        n = img.shape[axis]
        gutter = _uniform_strips(off, axis, n, config)
        pieces = _pieces(n, gutter, _seams(img, axis, jumps, config), min_len)
        if len(pieces) == 1 and pieces[0] == (0, n):
            continue  # nothing to cut on this axis
        if depth >= max_depth:
            break
        boxes = []
        for a, b in pieces:
            sub = img[a:b] if axis == 0 else img[:, a:b]
            sub_off = None if off is None else (off[a:b] if axis == 0 else off[:, a:b])
            for x, y, bw, bh in xy_cut(sub, min_len, depth + 1, max_depth, background, is_photo, page,
                                       sub_off, _slice(jumps, axis, a, b), config):
                boxes.append((x, y + a, bw, bh) if axis == 0 else (x + a, y, bw, bh))
        if framed and is_photo is not None:
            photos = [(x, y, bw, bh) for x, y, bw, bh in boxes if is_photo(img[y : y + bh, x : x + bw])]
            if photos:
                # the whole block (a picture with a margin of its own colour), and the photos in it
                # when they are a clearly smaller part (a panel or card holding a picture and text)
                return [(0, 0, w, h)] + [b for b in photos if b[2] * b[3] < config.inner_share * w * h]
        return boxes
    return [(0, 0, w, h)]


def _edges(img: np.ndarray) -> np.ndarray:
    """(H-1, W-1) bool: where the grey level steps by more than 12 to the next row plus column. A
    sub-block's edges are the slice [y : y + h - 1, x : x + w - 1] of the image's."""
    grey = channel_sum(img) / 3.0
    return (np.abs(np.diff(grey, axis=0))[:, :-1] + np.abs(np.diff(grey, axis=1))[:-1, :]) > 12


def _is_photo(edges: np.ndarray, min_side: int, config: BlocksConfig = BLOCKS) -> bool:
    """A block (given by its :func:`_edges`) large enough in both directions and not a flat area (text
    lines were cut away as thin strips)."""
    h, w = edges.shape[0] + 1, edges.shape[1] + 1
    if min(h, w) < min_side:
        return False
    return np.count_nonzero(edges) / max(1, edges.size) >= config.min_edge_fraction


def work_scale(rgb: np.ndarray, config: BlocksConfig = BLOCKS) -> np.ndarray:
    """An (H, W, 3) uint8 image resized (area) to at most ``config.work_side`` pixels on its longer side."""
    h, w = rgb.shape[:2]
    scale = min(1.0, config.work_side / max(h, w))
    if scale == 1.0:
        return rgb
    import cv2

    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def min_photo_side(small: np.ndarray, config: BlocksConfig = BLOCKS) -> int:
    """The shorter side, in pixels of a work-scale image, under which a block is no photo."""
    return max(24, int(config.min_photo_side * min(small.shape[:2])))


def find_blocks(small: np.ndarray, config: BlocksConfig = BLOCKS) -> list[Box]:
    """Photo-like blocks (x, y, w, h) of a work-scale (:func:`work_scale`) (H, W, 3) uint8 image."""
    img = small.astype(np.float32)
    min_side = min_photo_side(small, config)
    leaves = xy_cut(img, min_len=max(8, min_side // 2), is_photo=lambda block: _is_photo(_edges(block), min_side, config),
                    config=config)
    edges = _edges(img)  # once for all leaves
    return [(x, y, w, h) for x, y, w, h in leaves
            if max(w, h) <= config.max_aspect * min(w, h) and _is_photo(edges[y : y + h - 1, x : x + w - 1], min_side, config)]


def rectangles_in(rgb: np.ndarray, min_side: float, work_side: int = 384, config: BlocksConfig = BLOCKS) -> list[Box]:
    """Axis-aligned rectangles drawn by edges in an (H, W, 3) uint8 image or block: a picture on a
    gradient or a photo (a landing page's hero section), which no uniform gutter separates from its
    surroundings.

    A rectangle is the bounding box of an edge contour (Canny), or of edges connected within a pixel,
    whose four sides lie on edges along ``config.rect_side`` of their length (rounded corners allowed), at
    least ``min_side`` pixels on its shorter side, at most ``config.max_aspect`` times longer, and 4-80 % of the
    image. Returns (x, y, w, h) boxes in the image's pixels.
    """
    import cv2

    h, w = rgb.shape[:2]
    scale = min(1.0, work_side / max(h, w))
    small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA) \
        if scale < 1.0 else np.ascontiguousarray(rgb)
    edges = cv2.Canny(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), 30, 90)
    near = cv2.dilate(edges, np.ones((5, 5), np.uint8)) > 0  # within 2 px of an edge
    contours, _ = cv2.findContours(edges, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    # a drawing that touches its picture's frame breaks the frame's contour at each junction; the
    # connected edges (frame and drawing together) still span the whole frame
    _, _, parts, _ = cv2.connectedComponentsWithStats(cv2.dilate(edges, np.ones((3, 3), np.uint8)))
    candidates = [cv2.boundingRect(contour) for contour in contours]
    candidates += [tuple(int(v) for v in part[:4]) for part in parts[1:]]
    area = near.size
    out: list[Box] = []
    for x, y, bw, bh in candidates:
        too_long = max(bw, bh) > config.max_aspect * min(bw, bh)
        if min(bw, bh) < min_side * scale or not 0.04 * area <= bw * bh <= 0.8 * area or too_long:
            continue
        sides = (near[y, x : x + bw], near[y + bh - 1, x : x + bw], near[y : y + bh, x], near[y : y + bh, x + bw - 1])
        if min(float(side.mean()) for side in sides) >= config.rect_side:
            box = (round(x / scale), round(y / scale), round(bw / scale), round(bh / scale))
            if all(iou(box, other) < 0.8 for other in out):
                out.append(box)
    return out


def inside_share(block: Box, cell: Box) -> float:
    """The share of ``block``'s area that lies inside ``cell`` (both (x, y, w, h))."""
    bx, by, bw, bh = block
    cx, cy, cw, ch = cell
    ix = max(0, min(bx + bw, cx + cw) - max(bx, cx))
    iy = max(0, min(by + bh, cy + ch) - max(by, cy))
    return ix * iy / max(1, bw * bh)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    inter = inside_share(a, b) * a[2] * a[3]
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def grid_cells(blocks: list[Box], max_side: int = 3) -> list[Box]:
    """The finest regular grid (up to ``max_side`` x ``max_side``) over the blocks' frame that explains them.

    A collage's tiles are a grid; segmentation may find only each tile's drawing (white clip art on
    a white gutter) or merge two alike tiles. Every block must lie inside one cell or cover a run of
    neighbouring cells, and every grid row and column must hold a block; the grid with the most cells
    that hold a block of their own wins (a tile split in two still counts once). Returns the cells, or [].
    """
    if len(blocks) < 2:
        return []
    x0 = min(b[0] for b in blocks)
    y0 = min(b[1] for b in blocks)
    x1 = max(b[0] + b[2] for b in blocks)
    y1 = max(b[1] + b[3] for b in blocks)
    best: list[Box] = []
    best_singles = 0
    for rows in range(1, max_side + 1):
        for cols in range(1, max_side + 1):
            if rows * cols < 2:
                continue
            cw, ch = (x1 - x0) / cols, (y1 - y0) / rows
            cells = [(round(x0 + c * cw), round(y0 + r * ch), round(cw), round(ch)) for r in range(rows) for c in range(cols)]
            used_rows, used_cols, ok, taken = set(), set(), True, set()
            for b in blocks:
                share = [inside_share(b, cell) for cell in cells]
                hit = [i for i, s in enumerate(share) if s > 0.1]
                if max(share) >= 0.85:
                    hit = [int(np.argmax(share))]
                    taken.add(hit[0])
                else:  # a block spanning several cells must cover them
                    rs = sorted({i // cols for i in hit})
                    cs = sorted({i % cols for i in hit})
                    span = (round(x0 + cs[0] * cw), round(y0 + rs[0] * ch), round(cw * len(cs)), round(ch * len(rs)))
                    if iou(b, span) < 0.8:
                        ok = False
                        break
                used_rows.update(i // cols for i in hit)
                used_cols.update(i % cols for i in hit)
            # the grid with the most cells that hold a block of their own wins; on a tie, the coarser
            if ok and len(used_rows) == rows and len(used_cols) == cols and len(taken) > best_singles:
                best, best_singles = cells, len(taken)
    return best
