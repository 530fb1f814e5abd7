"""Every threshold and weight of a search, in one typed config saved in the index manifest.

An index built with one config searches with it everywhere (CLI, dashboard, API): the manifest's
``query`` entry is read back by :class:`~semcopy_lib.app.SearchService`; an index without one (built
before the config was saved) searches with the defaults. ``semcopy index info`` prints it.
The figures behind the defaults are in docs/benchmarks.md.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from semcopy_lib.segment import LayoutConfig, SubjectsConfig
from semcopy_lib.segment.cards import CardsConfig
from semcopy_lib.segment.lift import LiftConfig
from semcopy_lib.segment.page_pictures import PagePicturesConfig
from semcopy_lib.segment.residual import ResidualConfig
from semcopy_lib.segment.template import COLOURLESS, TemplateConfig


#: The settings an index saved before merging was calibrated per kind: one weight for the whole image,
#: one for every part, one for windows (read as slopes with no offset).
_LEGACY_MERGE = {"whole_weight": ("whole",), "window_weight": ("window",),
                 "part_weight": ("photo", "tile", "subject", "object", "residual", "other")}


@dataclass(frozen=True)
class MergeConfig:
    """How a hit's cosine counts, by the kind of query region that found it: ``slope * cosine + offset``
    puts it on the scale of a whole-image hit's cosine, so the best region of each gallery image wins
    on evidence (the maps are fitted on the benchmark's tuning split, :mod:`semcopy_lib.eval.calibrate`).

    Attributes:
        whole, photo, tile, subject, object, window, residual, card: (slope, offset) of each region kind;
        other: of the kinds of any other proposer.
    """

    whole: tuple[float, ...] = (1.0, 0.0)
    # fitted by `semcopy bench calibrate` on the tuning split (default encoder, docs/benchmarks.md)
    photo: tuple[float, ...] = (1.055, -0.169)
    subject: tuple[float, ...] = (0.485, 0.228)
    window: tuple[float, ...] = (0.713, 0.106)
    card: tuple[float, ...] = (0.814, 0.068)
    # not fitted (tiles: too few wrong best tile hits; no detector by default; a residual competes
    # with the second hit beside a copy): a part counts a little less than the whole
    tile: tuple[float, ...] = (0.96, 0.0)
    object: tuple[float, ...] = (0.96, 0.0)
    residual: tuple[float, ...] = (0.96, 0.0)
    other: tuple[float, ...] = (0.96, 0.0)

    def __post_init__(self):
        for kind in _MERGE_KINDS:
            if len(getattr(self, kind)) != 2:
                raise ValueError(f"{kind}: expected [slope, offset]")

    def map_of(self, kind: str) -> tuple[float, float]:
        """(slope, offset) of region ``kind``."""
        slope, offset = getattr(self, kind) if kind in _MERGE_KINDS else self.other
        return slope, offset

    @staticmethod
    def upgrade(data: dict[str, Any]) -> dict[str, Any]:
        """``data`` with the weights of an index saved before per-kind maps as those maps."""
        data = dict(data)
        for key, kinds in _LEGACY_MERGE.items():
            if key in data:
                weight = data.pop(key)
                for kind in kinds:
                    data.setdefault(kind, [weight, 0.0])
        return data


_MERGE_KINDS = tuple(f.name for f in fields(MergeConfig))


@dataclass(frozen=True)
class VerifyConfig:
    """Pixel checks of the first hits (:mod:`semcopy_lib.segment.template`).

    Attributes:
        top: hits checked per query.
        start: correlation from which a check counts as evidence.
        weight: a hit found in a picture gains ``weight * (correlation - start)`` (a copy instead closes
            ``(correlation - start) / (1 - start)`` of its gap to 1, so an exact copy keeps its 1).
        template: how the pixels are compared.
        colourless: a query searched by its parts whose mean saturation (HSV, 0-255, at 64 px) is
            under this has no colour (a line drawing, a pencil sketch, a greyscale print): when its
            whole image's first hit is not the search's first, and that hit's picture's edges line up
            better with the query's than the first hit's, it goes first (the parts of a drawing may
            look like other pictures, its edges say which one it was drawn from); 0: never.
        near: a single picture's first hit (not a page's) counts its picture's edges found around the
            part of the query that found it (one way, the picture inside the part) when they correlate
            at least this much; weaker, they are what any outline reaches in some part of a drawing.
        min_whole: the whole image's first hit goes first (``colourless``) only when its picture's edges
            line up with the query's at least this much (the bar of ``near``): weaker is what a grey
            photo's edges reach with many drawings.
        edges: how edge maps are compared (thumbnails either way round and mirrored, down to 60 % of the
            other's side: a drawing may be of a crop).
        confirm_copies: a query whose whole image's first hit reaches the copy level is a copy (searched
            as a whole only) when it is also found inside one of the first ``top`` hits' pictures
            (:func:`~semcopy_lib.query.verify.found_inside`); else it is searched by its parts too. The
            copy level is a cosine measured on a small gallery: in a large one, a collage or a page may
            reach it with some flat picture that holds none of it.
        pages: a screenshot's or collage's first hits are checked too, each around the photo or tile
            that found it (else only a single picture's): in a large gallery a page's placeholder
            gradients reach flags of a few coloured blocks above the page's own picture, whose pixels
            only the right hit finds.
        elsewhere: a hit whose picture is not found around the region that found it best is looked for
            around at most this many other photos or tiles that found it too (best first): a picture
            that layout analysis splits in bands (a jigsaw piece's tabs) is found whole by a larger box
            only, in which it may be smaller than the sizes tried; 0: its own region only.
        turns: the picture of a hit found by a region of a kind in ``turned_kinds`` is also looked for
            turned by these degrees (then halving steps; :attr:`TemplateConfig.turns`) when it is not
            found upright: a drawing pasted at a slant lines up with no upright picture, the right one
            included, so a look-alike upright wins.
        turned_kinds: ... those kinds (``residual``: a part that a copied picture does not explain, whose
            box holds the pasted drawing alone).
    """

    top: int = 5
    start: float = 0.7
    weight: float = 0.5
    # finer sizes only from 0.5: under it, no size closer than the grid's (5 % off at worst) reaches ``start``;
    # confirmed at twice the work side (the thumbnails' 96 px hold that much detail)
    template: TemplateConfig = field(default_factory=lambda: TemplateConfig(refine_from=0.5, confirm_side=80))
    colourless: float = COLOURLESS
    near: float = 0.5
    min_whole: float = 0.5
    edges: TemplateConfig = field(default_factory=lambda: TemplateConfig(
        work_side=64, scales=(0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)))
    confirm_copies: bool = True
    pages: bool = True
    elsewhere: int = 2
    turns: tuple[float, ...] = (-30.0, -20.0, -10.0, 10.0, 20.0, 30.0)
    turned_kinds: tuple[str, ...] = ("residual",)


@dataclass(frozen=True)
class VoteConfig:
    """Class vote (:func:`~semcopy_lib.query.rerank.voted`): the first ``top`` hits vote for their class
    with ``score ** power``; every hit gains ``weight`` x its class's share of the vote, among the whole
    image's ``k + depth`` best hits and the regions'."""

    top: int = 5
    weight: float = 0.1
    power: float = 4.0
    depth: int = 30


@dataclass(frozen=True)
class WindowsConfig:
    """Feature-map windows of a single picture (proposer ``windows``; the ``pasted`` probe reads the
    same pass).

    Attributes:
        side: the picture is passed through the encoder at this many px (the probe was trained at 384).
        cells: window sides in cells of the last map (12 x 12 at 384 px): 5-9 pool a subject that fills
            a third to three quarters of the picture.
        stride: windows start every ``stride`` cells.
    """

    side: int = 384
    cells: tuple[int, ...] = (5, 7, 9)
    stride: int = 2


@dataclass(frozen=True)
class PastedConfig:
    """The pasted-subject probe (proposer ``pasted``, :mod:`semcopy_lib.segment.pasted`).

    Attributes:
        thresholds: the heaviest part's box at each cell probability: a loose box may hold a neighbour
            as well, a strict one only the subject's core; all are searched.
        alike: of two boxes this alike (IoU), the stricter one is dropped: searched once.
    """

    thresholds: tuple[float, ...] = (0.3, 0.5, 0.7)
    alike: float = 0.9


@dataclass(frozen=True)
class ObjectsConfig:
    """Detector boxes (proposer ``objects``, when a detector is loaded).

    Attributes:
        confidence: boxes the detector is less sure of are dropped (mostly noise).
        most: at most this many boxes, most confident first.
        max_cover: a box covering at least this share of the query is the whole image, searched already.
    """

    confidence: float = 0.35
    most: int = 20
    max_cover: float = 0.9


@dataclass(frozen=True)
class TurnsConfig:
    """Turned views of a query's regions: each region of ``kinds`` is also embedded turned by each of
    ``angles`` (degrees, counter-clockwise), and its hits are the best of its views. A drawing pasted
    at a slant is nearer its upright gallery picture when turned back.

    Attributes:
        angles: each angle is one more embedding per region; () turns nothing. ±12° chosen on the tuning
            split of ``bench regions`` (docs/benchmarks.md).
        kinds: the region kinds that get turned views (subjects: what is pasted on a picture).
    """

    angles: tuple[float, ...] = (-12.0, 12.0)
    kinds: tuple[str, ...] = ("subject",)


@dataclass(frozen=True)
class RestConfig:
    """The rest of a single picture in which a gallery picture was found pasted (proposer ``rest``): the
    photo it was pasted on, when that photo is a gallery picture too (a composite's other source).

    Attributes:
        min_share: the largest strip of the query beside the pasted picture's box (left, right, above or
            below it) is searched when it covers at least this share of the query.
        top: its first hits checked ...
        correlation: ... each counts when the strip is found inside its picture
            (:func:`~semcopy_lib.segment.template.match_crop`) at least this well, which only the
            picture the strip was cut from reaches (docs/benchmarks.md); its score then closes its
            gap to 1 as a copy's does (:class:`VerifyConfig`).
    """

    min_share: float = 0.2
    top: int = 3
    correlation: float = 0.9


#: Region proposers run by default, in this order (see :mod:`semcopy_lib.query.propose`).
DEFAULT_PROPOSERS = ("layout", "objects", "pasted", "subjects", "cards", "windows", "residual", "rest")


@dataclass(frozen=True)
class QueryConfig:
    """All settings of a search.

    Attributes:
        max_side: queries are analysed and cropped at most this large (boxes are reported in file pixels).
        chunk: queries decoded and embedded together (their regions share encoder batches).
        proposers: the region proposers that run, by registered name (:func:`~semcopy_lib.query.propose.register_proposer`).
        turns, lift: more views of a region (turned; its subject lifted onto white), its hits the best of its views'.
        pictures: the gallery side: pictures held by gallery pages and collages, each kept as a vector
            of its own when the image is indexed (``most=0``: none), so that a query finds the page.
    """

    max_side: int = 2048
    chunk: int = 64
    proposers: tuple[str, ...] = DEFAULT_PROPOSERS
    merge: MergeConfig = field(default_factory=MergeConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    vote: VoteConfig = field(default_factory=VoteConfig)
    layout: LayoutConfig = field(default_factory=LayoutConfig)
    subjects: SubjectsConfig = field(default_factory=SubjectsConfig)
    cards: CardsConfig = field(default_factory=CardsConfig)
    windows: WindowsConfig = field(default_factory=WindowsConfig)
    pasted: PastedConfig = field(default_factory=PastedConfig)
    objects: ObjectsConfig = field(default_factory=ObjectsConfig)
    residual: ResidualConfig = field(default_factory=ResidualConfig)
    rest: RestConfig = field(default_factory=RestConfig)
    turns: TurnsConfig = field(default_factory=TurnsConfig)
    lift: LiftConfig = field(default_factory=LiftConfig)
    pictures: PagePicturesConfig = field(default_factory=PagePicturesConfig)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (tuples as lists), as the manifest stores it."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "QueryConfig":
        """The config of a manifest's ``query`` entry; missing settings take their defaults.

        Raises:
            ValueError: an unknown setting or a value of the wrong type (one line naming it).
        """
        return _build(cls, data or {}, "query")


def _build(cls, data: Any, where: str, base: Any = None):
    """``base`` (default ``cls()``) with the settings of ``data``; a nested config missing a setting keeps
    its parent's default for it (``VerifyConfig.template``'s, not a bare ``TemplateConfig``'s)."""
    base = cls() if base is None else base
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
    if hasattr(cls, "upgrade"):
        data = cls.upgrade(data)
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {', '.join(unknown)}")
    values = {}
    for name, value in data.items():
        default = getattr(base, name)
        if hasattr(default, "__dataclass_fields__"):
            values[name] = _build(type(default), value, f"{where}.{name}", default)
        elif isinstance(default, tuple) and default and isinstance(default[0], str):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{where}.{name}: expected a list of names")
            values[name] = tuple(value)
        elif isinstance(default, tuple):
            kind = type(default[0]) if default else float
            if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                      and (kind is float or v == int(v)) for v in value):
                raise ValueError(f"{where}.{name}: expected a list of {'numbers' if kind is float else 'whole numbers'}")
            values[name] = tuple(kind(v) for v in value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{where}.{name}: expected true or false, got {value!r}")
            values[name] = value
        elif not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"{where}.{name}: expected a number, got {value!r}")
        elif isinstance(default, int) and value != int(value):
            raise ValueError(f"{where}.{name}: expected a whole number, got {value!r}")
        else:
            values[name] = type(default)(value)
    try:
        return replace(base, **values)
    except ValueError as exc:
        raise ValueError(f"{where}.{exc}") from None
