"""Region proposers: the parts of a query worth searching on their own, behind one interface.

A proposer is a function ``(QueryImage) -> list[Proposal]`` registered under a name; the query
config's ``proposers`` says which run, in order. Each lives in one file of
:mod:`semcopy_lib.query.proposers`; a new one is a file plus its registration:

>>> @register_proposer("corner")
... def corner(query: QueryImage) -> list[Proposal]:
...     w, h = query.image.size
...     return [Proposal((0, 0, w // 2, h // 2), "corner")]

Proposers of stage ``regions`` run on a query whose whole image is not a copy of a gallery picture;
those of stage ``copy`` on the parts that are (the whole image, or a screenshot's photo or collage
tile found at copy level), with those pictures at hand (``QueryImage.copied``); those of stage
``matched`` on a single picture whose first hit, after the pixel checks, was found in it in place
(``QueryImage.matched``: where).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from semcopy_lib.data.boxes import Box
from semcopy_lib.detect import Detection, Detector
from semcopy_lib.encoders import Encoder, FeatureMaps
from semcopy_lib.query.config import QueryConfig
from semcopy_lib.segment import Layout, analyse, clip_box
from semcopy_lib.segment.template import match_picture

STAGES = ("regions", "copy", "matched")


@dataclass(frozen=True)
class Proposal:
    """A region to search.

    Attributes:
        box: (x, y, w, h) in ``QueryImage.image`` pixels.
        kind: what it is (reported as the region's kind).
        vector: (D,) its embedding, when the proposer made it (feature-map windows); else ...
        pixels: ... the image to embed (e.g. a part lifted onto white); else the query's crop of ``box``.
        views: more images of the same region, embedded too (e.g. the part on grey): the region's hits
            are the best of all its views'.
        upright: ``pixels`` are the region turned back upright (a card pasted at a slant): the pixel check
            looks for its hits' pictures in them too, as none is found upright in the query's crop.
    """

    box: Box
    kind: str
    vector: np.ndarray | None = None
    pixels: Image.Image | None = None
    views: tuple[Image.Image, ...] = ()
    upright: bool = False


_UNSET = object()


@dataclass(eq=False)
class QueryImage:
    """One query as the proposers see it; what several of them need is computed once.

    Attributes:
        image: RGB, at most ``config.max_side``.
        encoder: the search's encoder (its feature maps, :meth:`maps`).
        config: the search's settings.
        detector: the key-object detector, when one is loaded.
        copied: (stage ``copy``) (box in ``image`` pixels, the gallery picture it copies, what gives that
            picture larger from its file or None) for the whole image or each region found at copy level.
        matched: (stage ``matched``) the box in ``image`` pixels where the first hit's picture was found.
    """

    image: Image.Image
    encoder: Encoder
    config: QueryConfig
    detector: Detector | None = None
    copied: list[tuple[Box, Image.Image, Callable[[], Image.Image | None] | None]] = field(default_factory=list)
    matched: Box | None = None
    _detections: list[Detection] | None = field(default=None, repr=False)
    _layout: Layout | None = field(default=None, repr=False)
    _maps: object = field(default=_UNSET, repr=False)

    @property
    def layout(self) -> Layout:
        """The query's layout (:func:`~semcopy_lib.segment.analyse`), analysed on first use."""
        if self._layout is None:
            self._layout = analyse(self.image, self.config.layout)
        return self._layout

    @property
    def single(self) -> bool:
        """Whether the query is one picture (no screenshot, no collage)."""
        return self.layout.layout == "single"

    def detect(self) -> list[Detection]:
        """The detector's key objects in ``image`` pixels (run once; [] without a detector)."""
        if self._detections is None:
            objects = self.config.objects
            self._detections = (self.detector.detect(self.image, objects.confidence, objects.most)
                                if self.detector is not None else [])
        return self._detections

    def add_copied(self, picture: Image.Image, box: Box | None = None,
                   detail: Callable[[], Image.Image | None] | None = None) -> None:
        """Note that the whole image (``box`` None), or its part ``box`` (``image`` pixels; a screenshot's
        photo, a collage's tile), copies the gallery ``picture`` (RGB or RGBA thumbnail; ``detail``: gives
        the same larger, from its file, or None). A part's box may hold some of its card or frame: the
        picture is placed where its pixels are (:func:`~semcopy_lib.segment.template.match_picture`),
        and not noted when they are not found (correlation up to ``config.verify.start``)."""
        if box is None:
            self.copied.append(((0, 0, *self.image.size), picture, detail))
            return
        correlation, where = match_picture(self.image, box, picture, self.config.verify.template,
                                           self.config.verify.start)
        if where is not None and correlation > self.config.verify.start:
            self.copied.append((where, picture, detail))

    def maps(self) -> FeatureMaps | None:
        """The encoder's feature maps at ``config.windows.side`` (one pass, shared by every proposer)."""
        if self._maps is _UNSET:
            self._maps = self.encoder.feature_maps(self.image, self.config.windows.side)
        return self._maps  # type: ignore[return-value]


@dataclass(frozen=True)
class ProposerInfo:
    """A registered proposer. ``threaded``: it is numpy/OpenCV work that releases the GIL, run for all
    queries of a chunk in threads (the encoder's passes run one after another)."""

    name: str
    propose: Callable[[QueryImage], list[Proposal]]
    stage: str
    threaded: bool


PROPOSERS: dict[str, ProposerInfo] = {}


def register_proposer(name: str, stage: str = "regions", threaded: bool = False):
    """Decorator: register ``fn(QueryImage) -> list[Proposal]`` as proposer ``name``."""
    if stage not in STAGES:
        raise ValueError(f"proposer {name}: stage must be one of {', '.join(STAGES)}")

    def wrap(fn: Callable[[QueryImage], list[Proposal]]):
        PROPOSERS[name] = ProposerInfo(name, fn, stage, threaded)
        return fn

    return wrap


def check_proposers(names: tuple[str, ...]) -> None:
    """Raises ValueError (one line) naming the proposers in ``names`` that nobody registered."""
    unknown = [n for n in names if n not in PROPOSERS]
    if unknown:
        raise ValueError(f"unknown proposer(s) {', '.join(unknown)}; registered: {', '.join(sorted(PROPOSERS))}")


def propose(queries: list[QueryImage], stage: str) -> list[list[Proposal]]:
    """Each query's proposals of the proposers of ``stage`` that its config names, in config order.

    Raises:
        ValueError: the config names a proposer that is not registered.
    """
    if not queries:
        return []
    names = queries[0].config.proposers
    check_proposers(names)
    chosen = [PROPOSERS[n] for n in names if PROPOSERS[n].stage == stage]
    threaded = [p for p in chosen if p.threaded]

    def run_threaded(query: QueryImage) -> dict[str, list[Proposal]]:
        return {p.name: p.propose(query) for p in threaded}

    found: list[dict[str, list[Proposal]]]
    if threaded and len(queries) > 1:
        with ThreadPoolExecutor(max_workers=max(1, min(len(queries), os.cpu_count() or 1))) as pool:
            found = list(pool.map(run_threaded, queries))
    else:
        found = [run_threaded(q) for q in queries]
    for query, mine in zip(queries, found):
        for p in chosen:
            if not p.threaded:
                mine[p.name] = p.propose(query)
    # whatever a proposer returns, every box handed on lies inside its query
    return [[replace(proposal, box=clip_box(proposal.box, *query.image.size)) for p in chosen for proposal in mine[p.name]]
            for query, mine in zip(queries, found)]


def turned_views(image: Image.Image, angles: Sequence[float]) -> list[Image.Image]:
    """``image`` (a region's crop, RGB) turned by each of ``angles`` degrees, grown to hold all of it;
    the corners the turn uncovers take the mean colour of the crop's border, so they read as background."""
    if not angles:
        return []
    px = np.asarray(image.convert("RGB"), dtype=np.float32)
    border = np.concatenate([px[0], px[-1], px[:, 0], px[:, -1]])
    fill = tuple(int(round(v)) for v in border.mean(axis=0))
    return [image.rotate(float(a), resample=Image.BICUBIC, expand=True, fillcolor=fill) for a in angles]
