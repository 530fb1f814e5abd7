"""Cards: a rectangular picture (a photo, clip art on its own canvas) pasted on another picture, at a slant.

A card's four sides are straight edges at one angle. Straight segments of the picture's edges
(OpenCV's Canny and probabilistic Hough on a blurred, shrunk copy) vote for their angle modulo 90°;
at each of the strongest angles the segments are turned upright, and every rectangle whose sides lie
on them is scored by how much of its outline they trace. A side hidden in its background (a pale
sky on a pale wall) may be missing: three traced sides make a card, the fourth ends where they end.
The card is then turned back upright and searched as it was pasted (:func:`upright`): an axis-aligned
crop would hold the corners of its background and its content at a slant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from semcopy_lib.data.boxes import Box
from semcopy_lib.segment.layout import inside_share
from semcopy_lib.segment.template import REDUCING_GAP


@dataclass(frozen=True)
class CardsConfig:
    """Thresholds of :func:`find_cards` (saved with an index as the query config's ``cards``).

    Attributes:
        work_side: edges are found on the picture shrunk to this longer side.
        blur: Gaussian sigma (work pixels) before the edges: a photo's grain and grass are not sides.
        canny: Canny's low and high thresholds.
        min_segment: a straight segment is at least this share of the shorter side (Hough's line length).
        gap: Hough joins a segment's pieces across gaps of this many work pixels.
        angles: the card angles tried, strongest vote first.
        angle_tol: a segment within this many degrees of an angle (or of its right angle) is at it.
        position_tol: segments this near (work pixels, across their length) lie on one side.
        min_side: a card's sides are at least this share of the picture's shorter side.
        side_cover: three of its four sides are traced over at least this share of their length ...
        cover: ... and its whole outline over at least this share; ...
        corner_cover: ... and each corner is traced by a side reaching it: over at least this share of
            the quarter of one of its two sides next to it.
        max_share: a card covers at most this share of the picture (a larger one is the picture's frame).
        min_turn: a card is turned at least this many degrees (upright rectangles are the layout's).
        most: at most this many cards, largest first (a card inside a kept one is dropped).
    """

    work_side: int = 256
    blur: float = 1.5
    canny: tuple[int, ...] = (60, 150)
    min_segment: float = 0.08
    gap: int = 4
    angles: int = 3
    angle_tol: float = 2.5
    position_tol: float = 3.0
    min_side: float = 0.15
    side_cover: float = 0.5
    cover: float = 0.5
    corner_cover: float = 0.25
    max_share: float = 0.8
    min_turn: float = 3.0
    most: int = 2


@dataclass(frozen=True)
class Card:
    """A turned rectangle in a picture's pixels.

    Attributes:
        centre: (x, y).
        size: (width, height) of the card itself, upright.
        turn: degrees the card is turned counter-clockwise (-45 to 45).
        cover: share of its outline that straight edges trace.
    """

    centre: tuple[float, float]
    size: tuple[float, float]
    turn: float
    cover: float

    def corners(self) -> np.ndarray:
        """(4, 2) corner points (x, y)."""
        (cx, cy), (w, h) = self.centre, self.size
        t = math.radians(self.turn)
        c, s = math.cos(t), math.sin(t)
        half = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
        # counter-clockwise on screen is clockwise in (x right, y down) coordinates
        return np.stack([cx + c * half[:, 0] + s * half[:, 1], cy - s * half[:, 0] + c * half[:, 1]], axis=1)

    @property
    def box(self) -> Box:
        """The axis-aligned box (x, y, w, h) that holds the card."""
        p = self.corners()
        x0, y0 = np.floor(p.min(axis=0))
        x1, y1 = np.ceil(p.max(axis=0))
        return (int(x0), int(y0), int(x1 - x0), int(y1 - y0))


def _sides(lines: list[tuple[float, float, float]], tol: float, n: int, off: float) -> tuple[np.ndarray, np.ndarray]:
    """Segments (position across, start, end along; turned coordinates) within ``tol`` of each other
    across lie on one side: each side's position (G,) and how many of its pixels they trace up to each
    point along it (G, n + 1), from -``off``."""
    groups: list[tuple[list[float], list[tuple[float, float]]]] = []
    for pos, lo, hi in sorted(lines):
        if groups and pos - groups[-1][0][-1] <= tol:
            groups[-1][0].append(pos)
            groups[-1][1].append((lo, hi))
        else:
            groups.append(([pos], [(lo, hi)]))
    where, traced = [], []
    for positions, spans in groups:
        row = np.zeros(n, bool)
        for lo, hi in spans:
            row[max(0, int(lo + off)):max(0, min(n, int(hi + off) + 1))] = True
        where.append(float(np.mean(positions)))
        traced.append(np.concatenate([[0], np.cumsum(row)]))
    return np.array(where), np.array(traced).reshape(len(traced), n + 1)


def find_cards(image: Image.Image, config: CardsConfig = CardsConfig()) -> list[Card]:
    """The cards of ``image`` (RGB), at most ``config.most``, largest first."""
    import cv2

    width, height = image.size
    scale = min(1.0, config.work_side / max(width, height))
    small = image if image.mode == "RGB" else image.convert("RGB")  # a query is RGB already: no copy
    if scale < 1.0:  # Pillow's filtered bilinear: OpenCV's area average blurs sides under Canny's thresholds
        small = small.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.BILINEAR,
                             reducing_gap=REDUCING_GAP)
    small = np.asarray(small)
    h, w = small.shape[:2]
    short = min(w, h)
    edges = cv2.Canny(cv2.GaussianBlur(small, (0, 0), config.blur), *config.canny[:2])
    length_min = max(2, int(config.min_segment * short))
    found = cv2.HoughLinesP(edges, 1, np.pi / 180, threshold=length_min, minLineLength=length_min, maxLineGap=config.gap)
    if found is None or len(found) < 3:
        return []
    seg = found.reshape(-1, 4).astype(np.float64)
    d = seg[:, 2:] - seg[:, :2]
    length = np.hypot(d[:, 0], d[:, 1])
    fold = (np.degrees(np.arctan2(d[:, 1], d[:, 0])) + 45) % 90 - 45  # a side and its right angle alike
    votes = np.bincount(np.round(fold + 45).astype(int) % 90, weights=length, minlength=90)
    votes = votes + np.roll(votes, 1) + np.roll(votes, -1)
    off = math.hypot(w, h) / 2 + 2  # turned coordinates run from -off to off
    n = int(2 * off) + 2
    def reaches(along, line, start, stop, q):
        """Whether segments trace ``config.corner_cover`` of each side ``line`` between ``start`` and ``stop``."""
        return (along[line, stop] - along[line, start]) / q >= config.corner_cover

    cards: list[Card] = []
    tried: list[float] = []
    for peak in np.argsort(-votes):
        if len(tried) >= config.angles or votes[peak] < 2 * config.min_side * short:
            break
        angle = float(peak) - 45
        if any(abs((angle - a + 45) % 90 - 45) <= config.angle_tol for a in tried):
            continue
        tried.append(angle)
        if abs(angle) < config.min_turn:
            continue
        near = np.abs((fold - angle + 45) % 90 - 45) <= config.angle_tol
        if near.sum() < 3:
            continue
        off_by = (fold[near] - angle + 45) % 90 - 45
        angle += float((off_by * length[near]).sum() / length[near].sum())  # the sides' own angle
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        x, y = seg[near, 0::2] - w / 2, seg[near, 1::2] - h / 2  # (m, 2) end points about the centre
        tx, ty = c * x + s * y, -s * x + c * y  # turned by -angle: the card's sides run along the axes
        across = np.abs(ty[:, 0] - ty[:, 1]) < np.abs(tx[:, 0] - tx[:, 1])
        rows = [(ty[i].mean(), tx[i].min(), tx[i].max()) for i in np.flatnonzero(across)]
        cols = [(tx[i].mean(), ty[i].min(), ty[i].max()) for i in np.flatnonzero(~across)]
        # an untraced side lies where the traced ones end (an empty span: it traces nothing)
        ys, along_y = _sides(rows + [(e, 0.0, -1.0) for _, lo, hi in cols for e in (lo, hi)], config.position_tol, n, off)
        xs, along_x = _sides(cols + [(e, 0.0, -1.0) for _, lo, hi in rows for e in (lo, hi)], config.position_tol, n, off)
        top, bottom = np.triu_indices(len(ys), 1)
        left, right = np.triu_indices(len(xs), 1)
        tall = ys[bottom] - ys[top] >= config.min_side * short
        wide = xs[right] - xs[left] >= config.min_side * short
        top, bottom, left, right = top[tall], bottom[tall], left[wide], right[wide]
        if not len(top) or not len(left):
            continue
        # every pair of rows (top, bottom) with every pair of columns (left, right)
        t_, l_ = np.meshgrid(top, left, indexing="ij")
        b_, r_ = np.meshgrid(bottom, right, indexing="ij")
        x0, x1 = (np.clip((xs[i] + off).astype(int), 0, n) for i in (l_, r_))
        y0, y1 = (np.clip((ys[i] + off).astype(int), 0, n) for i in (t_, b_))
        span_x, span_y = np.maximum(1, x1 - x0), np.maximum(1, y1 - y0)
        sides = np.stack([(along_y[t_, x1] - along_y[t_, x0]) / span_x, (along_y[b_, x1] - along_y[b_, x0]) / span_x,
                          (along_x[l_, y1] - along_x[l_, y0]) / span_y, (along_x[r_, y1] - along_x[r_, y0]) / span_y])
        cover = ((sides[0] + sides[1]) * span_x + (sides[2] + sides[3]) * span_y) / (2 * (span_x + span_y))
        # each corner is traced by a side reaching it (the quarter of a side next to it): a rectangle
        # stretched past the card's end, along two sides that run on, has untraced corners there
        qx, qy = np.maximum(1, span_x // 4), np.maximum(1, span_y // 4)
        corners = [reaches(along_y, t_, x0, x0 + qx, qx) | reaches(along_x, l_, y0, y0 + qy, qy),
                   reaches(along_y, t_, x1 - qx, x1, qx) | reaches(along_x, r_, y0, y0 + qy, qy),
                   reaches(along_y, b_, x0, x0 + qx, qx) | reaches(along_x, l_, y1 - qy, y1, qy),
                   reaches(along_y, b_, x1 - qx, x1, qx) | reaches(along_x, r_, y1 - qy, y1, qy)]
        good = ((np.sort(sides, axis=0)[1] >= config.side_cover) & (cover >= config.cover) & np.all(corners, axis=0)
                & (span_x * span_y <= config.max_share * w * h))
        for i, j in zip(*np.nonzero(good)):
            mx, my = (xs[l_[i, j]] + xs[r_[i, j]]) / 2, (ys[t_[i, j]] + ys[b_[i, j]]) / 2
            cards.append(Card(((c * mx - s * my + w / 2) / scale, (s * mx + c * my + h / 2) / scale),
                              (span_x[i, j] / scale, span_y[i, j] / scale), -angle, float(cover[i, j])))
    # the largest first: a part of a card whose inner lines trace a rectangle too is not another card
    kept: list[Card] = []
    for card in sorted(cards, key=lambda k: -k.size[0] * k.size[1]):
        if len(kept) < config.most and all(inside_share(card.box, k.box) < 0.5 for k in kept):
            kept.append(card)
    return kept


def upright(image: Image.Image, card: Card) -> Image.Image:
    """The card's pixels turned back upright (RGB, its own size); beyond the picture, its edge pixels."""
    import cv2

    (cx, cy), (w, h) = card.centre, card.size
    turn = cv2.getRotationMatrix2D((cx, cy), -card.turn, 1.0)
    turn[:, 2] += (w / 2 - cx, h / 2 - cy)
    px = cv2.warpAffine(np.asarray(image if image.mode == "RGB" else image.convert("RGB")), turn, (max(1, round(w)), max(1, round(h))),
                        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return Image.fromarray(px)
