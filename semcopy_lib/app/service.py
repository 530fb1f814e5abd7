"""The widget-free search service: model and index loaded once, queries answered in batches."""

from __future__ import annotations

import gc
import hashlib
import os
import re
import threading
from collections import OrderedDict
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence, Union

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from semcopy_lib.app.indexing import IndexReport, add_paths, encoder_for_index, index_files, query_config
from semcopy_lib.app.results import QueryResult, SearchHit
from semcopy_lib.data import GalleryFile, ImageLoadError, load_image
from semcopy_lib.data.boxes import Box
from semcopy_lib.detect import Detection, Detector, load_detector
from semcopy_lib.encoders import Encoder
from semcopy_lib.index import GalleryIndex, Hit
from semcopy_lib.query import Proposal, QueryConfig, QueryImage, check_proposers, explained, merge_hits, propose, turned_views, voted
from semcopy_lib.query.clock import StageClock
from semcopy_lib.query.verify import arbitrated, found_inside, held_in, to_check, verified, with_rest
from semcopy_lib.segment import PART_KINDS, Region, crop, scale_box
from semcopy_lib.segment.lift import lifted_views
from semcopy_lib.segment.template import checked_thumbnails, colourless, read_thumbnails

QuerySource = Union[str, os.PathLike, bytes, Image.Image]
#: Seconds an upload waits while another process (a build, another server) writes the index.
WRITE_WAIT = 30.0

#: Decoded gallery thumbnails a service keeps for its pixel checks (least recently used go first; about
#: 30 KB each): the hits of one query are often those of the next.
THUMB_CACHE = 1024

if TYPE_CHECKING:
    from semcopy_lib.app.gallery_map import GalleryMap


class SearchService:
    """Search one gallery index.

    >>> service = SearchService("gallery.idx")
    >>> [result] = service.search(["query.jpg"], k=5)
    >>> result.hits[0].gallery_id, result.hits[0].score
    """

    def __init__(self, index_dir: os.PathLike | str, encoder: Encoder | None = None, device: str | None = None,
                 detector: Detector | None = None, read_only: bool = False, config: QueryConfig | None = None):
        """``detector``: a YOLO :class:`~semcopy_lib.detect.Detector` whose boxes become extra regions;
        ``read_only``: memory-map the index (search only; :meth:`add` then fails); ``config``: the
        search's settings (default: those saved in the index manifest, else the defaults)."""
        self.index = GalleryIndex.open(index_dir, read_only=read_only)
        self.config = config if config is not None else query_config(self.index)
        check_proposers(self.config.proposers)
        self.encoder = encoder if encoder is not None else encoder_for_index(self.index, device)
        self.index.check_encoder(self.encoder.name)
        self.detector = detector
        #: time spent per pipeline stage by this service's searches (``clock.reset()`` to start over)
        self.clock = StageClock()
        #: whether :meth:`search` shows a progress bar (on stderr) when not told: benchmarks set it
        self.progress = False
        self._thumbs: OrderedDict[bytes, Image.Image] = OrderedDict()  # decoded, by their PNG bytes
        self._thumbs_lock = threading.Lock()
        # what is loaded lives as long as the process: kept out of the cyclic collector's full passes,
        # which would otherwise scan all of it again in the middle of some search
        gc.freeze()

    def prepare(self) -> None:
        """Starts the encoder's one-off work in the background (:meth:`Encoder.prepare`), with the input
        shapes searches meet: the whole image and batches of regions' crops at the encoder's side, the
        feature-map pass at the windows' side."""
        side, most = self.encoder.config.image_size, max(1, self.encoder.cpu_batch)
        self.encoder.prepare([(n, side) for n in range(1, most + 1)] + [(1, self.config.windows.side)])

    @classmethod
    def with_objects(cls, index_dir: os.PathLike | str, weights: str | os.PathLike | None = None,
                     **kwargs) -> "SearchService":
        """A service whose queries also get key-object regions when YOLO weights are here (``weights``, else
        :func:`~semcopy_lib.detect.find_weights`'s search); without them it says so once and goes on. The
        index is opened first: a missing or broken one is said before any weights are looked for."""
        service = cls(index_dir, **kwargs)
        service.detector = load_detector(weights)
        gc.freeze()  # the detector too, as what ``__init__`` loaded
        return service

    def search(
        self,
        queries: Sequence[QuerySource],
        k: int = 10,
        names: Sequence[str] | None = None,
        batch_size: int = 32,
        regions: bool = True,
        vote: bool = True,
        progress: bool | None = None,
    ) -> list[QueryResult]:
        """Search each query as its whole image plus its photo regions; one result per query, in order.

        Args:
            queries: paths, raw bytes or PIL images.
            k: hits per query (each gallery id once, best region wins).
            names: how results and errors name the queries (default: the path, or ``query-<i>``).
            regions: also search the photo regions that :func:`semcopy_lib.segment.analyse` finds
                (screenshots, collages), detector boxes, and feature-map windows of a single picture
                (a subject on a larger background), whose first hits are then verified pixel for pixel
                (:meth:`_verified`). The whole image is always searched first; a query that already
                matches at the encoder's ``copy_score``, and is found in that picture's pixels, gets no
                regions (it is a copy, :meth:`_copies`).
            vote: re-rank by the class vote of the first hits (:func:`voted`; galleries with classes).
            progress: a bar of the queries searched on stderr (default: :attr:`progress`).

        Returns:
            One :class:`QueryResult` per query; unreadable queries carry ``error`` and no hits.
        """
        names = list(names) if names is not None else [
            os.fspath(q) if isinstance(q, (str, os.PathLike)) else f"query-{i}" for i, q in enumerate(queries)
        ]
        results = []
        bar = tqdm(total=len(names), desc="searching", unit="query",
                   disable=not (self.progress if progress is None else progress))
        # decoded queries are held only a chunk at a time, so a long query list has bounded memory
        for start in range(0, len(names), self.config.chunk):
            chunk = slice(start, start + self.config.chunk)
            results += self._search_chunk(list(queries[chunk]), names[chunk], k, batch_size, regions, vote)
            bar.update(len(names[chunk]))
        bar.close()
        return results

    def _search_chunk(
        self, queries: list[QuerySource], names: list[str], k: int, batch_size: int, regions: bool, vote: bool
    ) -> list[QueryResult]:
        results, loaded = [], []
        for name, source in zip(names, queries):
            result = QueryResult(query=name, layout="single")
            results.append(result)
            try:
                with self.clock.time("decode"):
                    loaded.append((result, load_image(source, name=name, max_side=self.config.max_side)))
            except ImageLoadError as exc:
                result.error = str(exc)
        if not loaded:
            return results
        # every query is searched as its whole image first
        owners = []
        for result, image in loaded:
            whole = Region((0, 0, *image.info["original_size"]), "whole")
            result.regions.append(whole)
            owners.append((result, whole))
        depth = max(k, self.config.verify.top) if regions else k  # enough candidates to verify, however few are asked
        # the whole image also brings the candidates that the class vote may move up
        with self.clock.time("embed"):
            wholes = self.encoder.embed([im for _, im in loaded], batch_size=batch_size)
        with self.clock.time("search"):
            per_region = self.index.search(wholes, k=depth + (self.config.vote.depth if vote and self.config.vote.weight > 0 else 0),
                                           encoder=self.encoder.name, whole=True)
        # the whole image's own hits, by id(result): a colourless query's parts may outrank its first
        wholes_of = {id(result): (region, hits) for (result, region), hits in zip(owners, per_region)}
        verify: dict[int, Image.Image] = {}  # queries searched by their parts whose hits are pixel-checked, by id(result)
        parted: dict[int, Image.Image] = {}  # every query searched by its parts, by id(result)
        copies: dict[int, Image.Image] = {}  # queries whose whole image matched at copy level, by id(result)
        seen: dict[int, dict[str, float]] = {}  # a copy's correlations with its first hits' pictures, by id(result)
        upright: dict[int, dict[Box, Image.Image]] = {}  # regions searched turned upright, their pixels by box, by id(result)
        shown: dict[int, str] = {}  # the picture a single picture aligns with, found by a part, by id(result)
        if regions:
            # a query whose whole image matches at copy level, and is found in that picture, is that
            # picture: no regions needed
            copy = self.encoder.copy_score
            todo = [(r, im) for (r, im), hits in zip(loaded, per_region)
                    if not self._copies(im, hits, seen.setdefault(id(r), {}))]
            asked = {id(r): QueryImage(im, self.encoder, self.config, self.detector) for r, im in loaded}
            regions_from = len(owners)
            decoded = {id(r): im for r, im in loaded}
            more, vectors = self._proposed([(r, asked[id(r)]) for r, _ in todo], "regions", batch_size, upright)
            if more:
                owners += more
                with self.clock.time("search"):
                    per_region += self.index.search(vectors, k=depth, encoder=self.encoder.name,
                                                    small=self._small(more, decoded))
            # a single picture searched by its parts may hold a pasted gallery picture, and a page or a
            # collage holds its pictures: check the pixels
            verify = {id(r): im for r, im in todo if r.layout == "single" or self.config.verify.pages}
            parted = {id(r): im for r, im in todo}
            # a copy may be of either of two near-twins (mirrored, the same colours in another order):
            # check which picture it was cut from
            searched = {id(r) for r, _ in todo}
            copies = {id(r): im for r, im in loaded if id(r) not in searched}
            # a copy may hold more than its picture (a drawing pasted on a gallery photo), and so may a
            # screenshot's photo or a collage's tile that copies one: what the picture does not explain
            # is searched too
            # (result, the copying part's box in file pixels, None for the whole image, its first hit)
            copied = [(r, None, per_region[i][0]) for i, (r, _) in enumerate(loaded) if id(r) in copies and per_region[i]]
            copied += [(r, region.box, hits[0]) for (r, region), hits in zip(owners[regions_from:], per_region[regions_from:])
                       if region.kind in PART_KINDS and hits and copy is not None and hits[0].score >= copy]
            # a single picture whose whole image missed copy level but a part of which (a window, a subject)
            # reaches it may be that picture under something pasted large: the whole is compared with the
            # best such part's picture (the residual's alignment tells whether it is)
            best_part: dict[int, tuple[QueryResult, None, Hit]] = {}
            for (r, region), hits in zip(owners[regions_from:], per_region[regions_from:]):
                if (id(r) in verify and region.kind not in PART_KINDS and hits and copy is not None
                        and hits[0].score >= copy and (id(r) not in best_part or hits[0].score > best_part[id(r)][2].score)):
                    best_part[id(r)] = (r, None, hits[0])
            copied += best_part.values()
            shown = {key: hit.gallery_id for key, (_, _, hit) in best_part.items()}
            with self.clock.time("verify"):
                thumbs = self._thumbnails({hit.gallery_id for _, _, hit in copied})
            with self.clock.time("propose"):  # for what a copy adds to its picture: read when it is asked for
                details = {gid: partial(self._detail, path) if self.config.residual.detail_side > 0
                           and (path := self.index.gallery_file(gid)) else None for gid in thumbs}
            for r, box, hit in copied:
                if hit.gallery_id in thumbs:
                    query = asked[id(r)]
                    (ow, oh), (w, h) = query.image.info["original_size"], query.image.size
                    query.add_copied(thumbs[hit.gallery_id], None if box is None else scale_box(box, w / ow, h / oh),
                                     details[hit.gallery_id])
            more, vectors = self._proposed([(r, q) for r, q in ((r, asked[id(r)]) for r, _ in loaded) if q.copied],
                                           "copy", batch_size)
            if more:
                owners += more
                with self.clock.time("search"):
                    per_region += self.index.search(vectors, k=depth, encoder=self.encoder.name,
                                                    small=self._small(more, decoded))
                # a copy with something pasted on it: its whole image's hits under copy level are the
                # copied picture's neighbours, not what was pasted (but for a twin that holds it in its pixels)
                pasted = {id(r) for r, region in more if region.kind == "residual" and id(r) in copies}
                for i, (r, image) in enumerate(loaded):  # owners[i]: r's whole image
                    if id(r) in pasted:
                        with self.clock.time("verify"):
                            top = per_region[i][: self.config.verify.top]
                            held = held_in(image, top, self._thumbnails(h.gallery_id for h in top),
                                           self.config.verify, seen.setdefault(id(r), {}))
                        per_region[i] = explained(per_region[i], copy, held)
            if self.detector is not None:  # key objects are reported for every query, copies too
                for result, image in loaded:
                    with self.clock.time("propose"):
                        detected = asked[id(result)].detect()
                    (ow, oh), (w, h) = image.info["original_size"], image.size
                    result.objects = [Detection(scale_box(d.box, ow / w, oh / h), d.label, d.confidence)
                                      for d in detected]
        # every region's hits, named by that region, merged per query on one scale
        with self.clock.time("rerank"):
            merged = self._merge([(id(result), region.kind,
                                   [SearchHit(h.gallery_id, h.score, h.label, h.source, region.box, region.kind) for h in hits])
                                  for (result, region), hits in zip(owners, per_region)])
        # the photos and tiles that found each gallery id, best first: a picture is looked for around them too
        found_at: dict[int, dict[str, list[tuple[float, Box]]]] = {}
        for (result, region), hits in zip(owners, per_region):
            if region.kind in PART_KINDS and id(result) in verify:
                for hit in hits:
                    found_at.setdefault(id(result), {}).setdefault(hit.gallery_id, []).append((hit.score, region.box))
        # the first hit of each region searched turned upright (a card), with its pixels: looked for there
        cards_of: dict[int, dict[str, list[tuple[Box, Image.Image]]]] = {}
        for (result, region), hits in zip(owners, per_region):
            if hits and region.box in upright.get(id(result), {}):
                cards_of.setdefault(id(result), {}).setdefault(hits[0].gallery_id, []).append(
                    (region.box, upright[id(result)][region.box]))
        ranked_of: dict[int, list[SearchHit]] = {}
        for result in results:
            ranked = merged.get(id(result), [])
            if id(result) in verify or id(result) in copies:
                with self.clock.time("verify"):
                    copy_of = id(result) in copies
                    boxes = {gid: [box for _, box in sorted(found, key=lambda f: -f[0])]
                             for gid, found in found_at.get(id(result), {}).items()}
                    ranked = self._verified((copies if copy_of else verify)[id(result)], ranked, copy=copy_of,
                                            seen=seen.get(id(result)), found_at=boxes, cards=cards_of.get(id(result)),
                                            copied=shown.get(id(result)))
            ranked_of[id(result)] = ranked
        # a single picture in which a gallery picture was found pasted: the rest of it is searched too (the
        # photo it was pasted on, when that photo is a gallery picture as well)
        matched = []
        for result in results:
            ranked = ranked_of[id(result)]
            if id(result) in verify and result.layout == "single" and ranked and ranked[0].region_kind == "match":
                query = asked[id(result)]
                (ow, oh), (w, h) = query.image.info["original_size"], query.image.size
                query.matched = scale_box(ranked[0].query_box, w / ow, h / oh)
                matched.append((result, query))
        if matched:
            self._search_rest(matched, ranked_of, batch_size)
        for result in results:
            ranked = ranked_of[id(result)]
            with self.clock.time("rerank"):
                ranked = voted(ranked, self.encoder.copy_score, self.config.vote) if vote else ranked
            if id(result) in parted:
                with self.clock.time("verify"):
                    ranked = self._arbitrated(parted[id(result)], ranked, *wholes_of[id(result)], vote,
                                              paged=result.layout != "single")
            result.hits = ranked[:k]
            # of the many windows, list those that a hit came from, and where verified pictures sit, so
            # that every hit's box is a region
            for box, kind in dict.fromkeys((h.query_box, h.region_kind) for h in result.hits
                                           if h.region_kind in ("window", "match")):
                result.regions.append(Region(box, kind))
        return results

    def _copies(self, image: Image.Image, hits: list, seen: dict[str, float]) -> bool:
        """Whether the query ``image`` copies a gallery picture: its whole image's first hit (of ``hits``,
        best first) reaches the encoder's ``copy_score`` and, with ``config.verify.confirm_copies``, it is
        found inside one of the first hits' pictures (:func:`~semcopy_lib.query.verify.found_inside`, its
        correlations kept in ``seen``; an index without thumbnails is taken at its word)."""
        copy = self.encoder.copy_score
        if copy is None or not hits or hits[0].score < copy:
            return False
        if not self.config.verify.confirm_copies:
            return True
        with self.clock.time("verify"):
            thumbs = self._thumbnails(h.gallery_id for h in hits[: self.config.verify.top])
            return not thumbs or found_inside(image, hits, thumbs, self.config.verify, seen)

    def _search_rest(self, matched: list[tuple[QueryResult, QueryImage]], ranked_of: dict[int, list[SearchHit]],
                     batch_size: int) -> None:
        """The ``matched``-stage regions of each query (:mod:`~semcopy_lib.query.proposers.rest`) searched, and
        the pictures that hold them added to its hits in ``ranked_of`` (by id(result);
        :func:`~semcopy_lib.query.verify.with_rest`)."""
        owners, vectors = self._proposed(matched, "matched", batch_size)
        if not owners:
            return
        with self.clock.time("search"):
            found = self.index.search(vectors, k=self.config.rest.top, encoder=self.encoder.name)
        query_of = {id(result): query for result, query in matched}
        with self.clock.time("verify"):
            thumbs = self._thumbnails({hit.gallery_id for hits in found for hit in hits})
            parts: dict[int, list] = {}
            for (result, region), hits in zip(owners, found):
                image = query_of[id(result)].image
                (ow, oh), (w, h) = image.info["original_size"], image.size
                parts.setdefault(id(result), []).append(
                    (crop(image, scale_box(region.box, w / ow, h / oh)),
                     [SearchHit(h.gallery_id, h.score, h.label, h.source, region.box, region.kind) for h in hits]))
            for key, found_parts in parts.items():
                ranked_of[key] = with_rest(ranked_of[key], found_parts, thumbs, self.config.rest, self.config.verify)

    def _detail(self, path: Path) -> Image.Image | None:
        """The gallery picture of ``path`` (:meth:`~semcopy_lib.index.GalleryIndex.gallery_file`) at
        ``config.residual.detail_side`` (RGB or RGBA), for what a copy adds to it
        (:func:`~semcopy_lib.segment.residual.residual_parts`); None when the file does not decode, or would
        decode to more than ``detail_max_pixels`` (the thumbnail serves then)."""
        side = self.config.residual.detail_side
        try:
            picture = load_image(path, max_side=4 * side, keep_alpha=True, coarse=True,
                                 max_decoded=self.config.residual.detail_max_pixels)
        except ImageLoadError:
            return None
        picture.thumbnail((side, side), Image.LANCZOS)
        return picture

    def _merge(self, found: list[tuple[int, str, list[SearchHit]]]) -> dict[int, list[SearchHit]]:
        """Every region's hits (owner, region kind, hits) merged per owner (:func:`~semcopy_lib.query.merge_hits`)."""
        return merge_hits(found, self.config.merge)

    def _verified(self, image: Image.Image, ranked: list[SearchHit], copy: bool = False,
                  seen: dict[str, float] | None = None,
                  found_at: dict[str, list[Box]] | None = None,
                  cards: dict[str, list[tuple[Box, Image.Image]]] | None = None,
                  copied: str | None = None) -> list[SearchHit]:
        """``ranked`` re-scored by pixel evidence (:func:`~semcopy_lib.query.verify.verified`), with the
        thumbnails of the hits it checks (``seen``: a copy's correlations already computed; ``found_at``:
        the other regions' boxes that found each gallery id, best first; ``cards``: the regions searched
        turned upright whose first hit each gallery id is, with their pixels; ``copied``: the picture a
        single picture was found to show by a part)."""
        top = to_check(ranked, self.config.verify, copy, cards or {})
        thumbs = self._thumbnails(h.gallery_id for h in top)
        return verified(image, ranked, top, thumbs, self.config.verify, self.encoder.copy_score, copy, seen, found_at,
                        cards, copied)

    def _arbitrated(self, image: Image.Image, ranked: list[SearchHit], whole: Region, hits: list, vote: bool,
                    paged: bool = False) -> list[SearchHit]:
        """``ranked``, or the whole image's first hit (``hits``: the whole image's, its first after the
        class vote) first when a colourless query's edges say so (:func:`~semcopy_lib.query.verify.arbitrated`;
        ``paged``: the query is a page or collage)."""
        if self.config.verify.colourless <= 0 or not colourless(image, self.config.verify.colourless):
            return ranked  # a query in colour: neither the vote below nor the thumbnails are needed
        mine = [SearchHit(h.gallery_id, h.score, h.label, h.source, whole.box, "whole") for h in hits]
        mine = voted(mine, self.encoder.copy_score, self.config.vote) if vote else mine
        if not ranked or not mine or ranked[0].gallery_id == mine[0].gallery_id:
            return ranked
        whole_first = mine[0]
        thumbs = self._thumbnails({ranked[0].gallery_id, whole_first.gallery_id})
        return arbitrated(image, ranked, whole_first, thumbs, self.config.verify, paged)

    def _proposed(
        self, queries: list[tuple[QueryResult, QueryImage]], stage: str, batch_size: int,
        upright: dict[int, dict[Box, Image.Image]] | None = None,
    ) -> tuple[list[tuple[QueryResult, Region]], np.ndarray]:
        """The regions that the proposers of ``stage`` find in each query (:func:`~semcopy_lib.query.propose`),
        added to its result in file pixels, and their (R, D) vectors: the proposals to embed in one
        batch, then those embedded already. ``upright`` gets the pixels of the regions searched turned
        upright (by id(result), then box in file pixels)."""
        with self.clock.time("propose"):
            proposals = propose([q for _, q in queries], stage)
            subjects = self._lifted([q for _, q in queries], proposals)
        crops, owners, ready, ready_owners = [], [], [], []
        for (result, query), found in zip(queries, proposals):
            if stage == "regions":
                result.layout = query.layout.layout
            (ow, oh), (w, h) = query.image.info["original_size"], query.image.size
            for proposal in found:
                # the contract reports boxes in the pixels of the file as given
                region = Region(scale_box(proposal.box, ow / w, oh / h), proposal.kind)
                if proposal.vector is not None:  # windows: many, so only those a hit came from are listed
                    ready.append(proposal.vector)
                    ready_owners.append((result, region))
                    continue
                result.regions.append(region)
                pixels = proposal.pixels if proposal.pixels is not None else crop(query.image, proposal.box)
                if proposal.upright and upright is not None:
                    upright.setdefault(id(result), {})[region.box] = pixels
                views = [pixels, *proposal.views]  # one region, its best view's hits
                if proposal.kind in self.config.turns.kinds:
                    views += turned_views(pixels, self.config.turns.angles)
                views += subjects.get((id(query), proposal.box, proposal.kind), [])
                crops += views
                owners += [(result, region)] * len(views)
        with self.clock.time("embed"):
            parts = ([self.encoder.embed(crops, batch_size=batch_size)] if crops else []) + ([np.stack(ready)] if ready else [])
        vectors = np.concatenate(parts) if parts else np.zeros((0, self.encoder.dim), dtype=np.float32)
        return owners + ready_owners, vectors

    def _lifted(self, queries: list[QueryImage], proposals: list[list[Proposal]]) -> dict[tuple, list[Image.Image]]:
        """The lifted views (:func:`~semcopy_lib.segment.lift.lifted_views`) of each proposal of a kind in
        ``config.lift.kinds`` that is a crop of its box, by (id(query), box, kind)."""
        jobs = {(id(q), p.box, p.kind): (q.image, p.box) for q, found in zip(queries, proposals) for p in found
                if p.kind in self.config.lift.kinds and p.pixels is None and p.vector is None}
        return dict(zip(jobs, lifted_views(list(jobs.values()), self.config.lift, workers=os.cpu_count() or 1)))

    def add(self, paths: Iterable[os.PathLike | str], progress: bool = False) -> IndexReport:
        """Add image files or folders to the gallery without a rebuild."""
        return add_paths(self.index, paths, encoder=self.encoder, progress=progress)

    def add_file(self, path: os.PathLike | str, gallery_id: str) -> IndexReport:
        """Add one file under an explicit gallery id (e.g. ``label/name.jpg`` from an upload); waits
        up to :data:`WRITE_WAIT` s while another process writes the index."""
        return index_files(self.index, [GalleryFile(path, gallery_id)], self.encoder, progress=False, wait=WRITE_WAIT)

    def add_upload(self, content: bytes, name: str, label: str) -> str:
        """Add an uploaded image to the gallery under class ``label``; returns its gallery id.

        The image is stored re-encoded as PNG under ``INDEX_DIR/uploads/<sha256>.png``: the uploaded
        name is never used as a path, only (reduced to letters, digits, - and _) in the gallery id.

        Raises:
            ImageLoadError: ``content`` is not a readable image (one line naming ``name``).
            ValueError: ``label`` is not a class name (letters, digits, space, - and _, folders with /).
        """
        label = label.strip().strip("/")
        if not re.fullmatch(r"[\w\- ]+(/[\w\- ]+)*", label):
            raise ValueError("a class name is letters, digits, spaces, - and _ (folders with /)")
        image = load_image(content, name=name)
        folder = self.index.uploads
        folder.mkdir(exist_ok=True)
        digest = hashlib.sha256(content).hexdigest()[:16]
        path = folder / f"{digest}.png"
        tmp = folder / f"{digest}.png.tmp"
        image.save(tmp, "PNG")
        os.replace(tmp, path)
        stem = re.sub(r"[^\w\-]+", "_", Path(name).stem).strip("_") or "upload"
        gallery_id = f"{label}/{stem}.png"
        if self.index.store.sha_of(gallery_id) is not None:
            gallery_id = f"{label}/{stem}-{digest[:8]}.png"
        self.add_file(path, gallery_id)
        return gallery_id

    def _small(self, found: list[tuple[QueryResult, Region]], decoded: dict[int, Image.Image]) -> list[bool] | None:
        """Per region of ``found``, whether it searches the gallery's shrunk views too
        (:attr:`~semcopy_lib.segment.page_pictures.PagePicturesConfig.small`): its longer side, in its
        query's pixels as decoded (``decoded`` by id(result)), is at most twice theirs. None: the index
        keeps none."""
        side = self.config.pictures.small
        if side <= 0:
            return None
        flags = []
        for result, region in found:
            (ow, oh), (w, h) = decoded[id(result)].info["original_size"], decoded[id(result)].size
            flags.append(max(region.box[2] * w / ow, region.box[3] * h / oh) <= 2 * side)
        return flags

    def _thumbnails(self, gallery_ids: Iterable[str]) -> dict[str, Image.Image]:
        """:func:`~semcopy_lib.segment.template.read_thumbnails` of the index's thumbnails of ``gallery_ids``,
        each decoded once while :data:`THUMB_CACHE` keeps it (keyed by its bytes, so a thumbnail written
        anew is decoded anew). The images are shared: callers copy before they change one."""
        found = self.index.thumbs(gallery_ids)
        kept, missing = {}, {}
        with self._thumbs_lock:
            for gallery_id, png in found.items():
                if (image := self._thumbs.get(png)) is not None:
                    self._thumbs.move_to_end(png)
                    kept[gallery_id] = image
                else:
                    missing[gallery_id] = png
        decoded = read_thumbnails(missing)
        with self._thumbs_lock:
            for gallery_id, image in decoded.items():
                self._thumbs[missing[gallery_id]] = image
            while len(self._thumbs) > THUMB_CACHE:
                self._thumbs.popitem(last=False)
        return kept | decoded

    def thumbnail(self, gallery_id: str) -> bytes | None:
        """The PNG bytes of ``gallery_id``'s thumbnail; None when the index holds none that decodes
        (an index folder is untrusted)."""
        return checked_thumbnails(self.index.thumbs([gallery_id])).get(gallery_id)

    def describe(self) -> dict:
        """What a dashboard shows about this service: encoder and its thresholds, whether key objects
        are on, the encoders installed here and the number of gallery images."""
        from semcopy_lib.encoders import list_encoders

        return {
            "encoder": self.encoder.name,
            "copy_score": self.encoder.copy_score,
            "subject_score": self.encoder.subject_score,
            "detector": self.detector is not None,
            "encoders": sorted({i.name for i in list_encoders() if i.available} | {self.encoder.name}),
            "count": len(self.index),
        }

    def duplicates(self, threshold: float | None = None, level: str = "copy") -> dict:
        """The gallery's groups of copies (:func:`~semcopy_lib.app.dedup.find_duplicates`, keeper rule)
        at ``threshold`` (default: the encoder's measured score for ``level``): ``{"threshold", "groups":
        [Group.to_dict()...], "html": the groups with their thumbnails (report_fragment)}``."""
        from semcopy_lib.app.dedup import default_threshold, find_duplicates, report_fragment

        threshold = default_threshold(self.encoder, level) if threshold is None else float(threshold)
        groups = find_duplicates(self.index, threshold, level=level)
        thumbs = self.index.thumbs({m.gallery_id for g in groups for m in g.members})
        return {"threshold": threshold, "groups": [g.to_dict() for g in groups], "html": report_fragment(groups, thumbs)}

    def gallery_map(self) -> "GalleryMap":
        """The gallery's 2-D map (cached beside the index; see :mod:`semcopy_lib.app.gallery_map`)."""
        from semcopy_lib.app.gallery_map import gallery_map

        return gallery_map(self.index)
