"""Building and growing a gallery index from image files (used by the CLI, notebooks and dashboard)."""

from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from PIL import Image
from tqdm.auto import tqdm

from semcopy_lib.data import GalleryFile, ImageLoadError, gallery_id_for, load_image, scan_folder, to_rgb
from semcopy_lib.data.boxes import Box
from semcopy_lib.data.folders import sha256_of
from semcopy_lib.data.trust import from_manifest
from semcopy_lib.encoders import DEFAULT_ENCODER, Encoder, create_encoder
from semcopy_lib.encoders.onnx_runtime import wanted_runtime
from semcopy_lib.index import GalleryIndex, IndexDirError, NewItem
from semcopy_lib.index.directory import MANIFEST
from semcopy_lib.query import QueryConfig, check_proposers
from semcopy_lib.segment import crop, scale_box
from semcopy_lib.segment.page_pictures import PagePicturesConfig, page_pictures, small_view, trimmed_box
from semcopy_lib.segment.template import thumbnail


@dataclass
class IndexReport:
    """What an index build or add did."""

    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, one-line reason)
    optimised: dict | None = None  # the IVF report when this build took the index past FLAT_MAX
    removed: list[str] = field(default_factory=list)  # (sync) ids whose files are gone
    small_views: list[str] = field(default_factory=list)  # unchanged ids given the shrunk view they lacked

    def summary(self) -> str:
        return (
            f"{len(self.added)} added, {len(self.replaced)} replaced, "
            f"{len(self.unchanged)} unchanged, {len(self.skipped)} skipped"
            + (f", {len(self.removed)} removed" if self.removed else "")
            + (f", {len(self.small_views)} given a shrunk view" if self.small_views else "")
        )


def encoder_for_index(index: GalleryIndex, device: str | None = None) -> Encoder:
    """The encoder an index was built with, built again from its saved config; under the default runtime
    (``SEMCOPY_RUNTIME`` unset), in exact fp32 when the index's vectors were embedded in fp32 (a query
    and the gallery then embed alike, the OpenVINO default being a near copy of fp32, not fp32).

    Raises:
        UntrustedWeights: the manifest names a file that only a loader that can run code opens, and the
            user never named it (:mod:`semcopy_lib.data.trust`).
    """
    cfg = index.encoder_config
    with from_manifest(index.directory / MANIFEST):  # an index folder may come from anyone
        encoder = create_encoder(cfg["name"], path=cfg.get("path"), device=device)
    if index.manifest.get("precision") == "fp32" and wanted_runtime() == "auto" and encoder.precision() != "fp32":
        encoder.use_runtime("onnx")
    return encoder


#: ``index sync --watch`` waits for this many ms of quiet after a change before it syncs (a copy of
#: many files is one sync, not one per file).
WATCH_DEBOUNCE_MS = 500
#: Gallery images larger than this are decoded shrunk by a whole factor (:func:`load_image`'s ``coarse``)
#: to less than twice it: enough for every encoder, bounded memory, no resampling pass of their own.
DECODE_MAX_SIDE = 1024


def query_config(index: GalleryIndex) -> QueryConfig:
    """The search settings saved in ``index``'s manifest (the defaults for an index without them).

    Raises:
        IndexDirError: the saved settings are not a valid :class:`~semcopy_lib.query.QueryConfig`.
    """
    try:
        config = QueryConfig.from_dict(index.manifest.get("query"))
        check_proposers(config.proposers)
        return config
    except ValueError as exc:
        raise IndexDirError(f"{index.directory / 'manifest.json'}: {exc}") from None


def index_files(
    index: GalleryIndex,
    files: Sequence[GalleryFile],
    encoder: Encoder,
    batch_size: int = 32,
    progress: bool = True,
    wait: float | None = None,
) -> IndexReport:
    """Embed and add ``files`` to ``index`` in batches; unreadable files are skipped with a reason.

    The index's write lock is held throughout (``wait``: seconds to wait for another writer, default the
    lock's: none). Each batch is one SQLite transaction and files already indexed with the same content
    are not decoded or embedded again, so rerunning an interrupted (even killed) build continues where
    it stopped. Files are decoded in threads and embedded as they are ready (a slow file holds up only
    its group, see :data:`WRITE_AHEAD`), but written in input order, with the same vectors on every run.

    Raises:
        IndexLocked: another process is writing the index.
    """
    with index.writing(wait):
        return _index_files(index, files, encoder, batch_size, progress)


#: Files decoded ahead of inference in :func:`index_files`, in batches (their pixels are held: about
#: 2 MB an image for the default encoder's views).
DECODE_AHEAD = 2
#: Files decoded or embedded but not yet written, in batches, at most: they wait for a slower file before
#: them (a 168-Mpx PNG takes seconds to decode), since the index is written in input order.
WRITE_AHEAD = 16


@dataclass
class _Prepared:
    """What indexing keeps of a decoded gallery image until it is embedded.

    Attributes:
        pixels: its :meth:`~semcopy_lib.encoders.Encoder.gallery_pixels` (None: the encoder embeds images) ...
        png: its thumbnail.
        boxes: the pictures it holds (a page's, a collage's), the drawing trimmed to what shows
            (:func:`~semcopy_lib.segment.page_pictures.trimmed_box`), the picture shrunk
            (:func:`~semcopy_lib.segment.page_pictures.small_view`), in ``size`` pixels ...
        held: ... their crops (views) ...
        roles: ... and what each is: 0 a picture held (every search), 1 the trimmed drawing (region
            searches only), 2 the shrunk picture (searches of small regions only).
        original_size: the file's (width, height); ``size``: the decoded image's.
        image: the image itself, only when ``pixels`` is None.
    """

    pixels: list | None
    png: bytes
    boxes: list
    held: list[Image.Image]
    roles: list[int]
    original_size: tuple[int, int]
    size: tuple[int, int]
    image: Image.Image | None


class _Prefetch:
    """Decodes and prepares files (an encoder's preprocessing, a thumbnail) in threads beside inference,
    at most ``ahead`` at a time, and hands each back as soon as it is ready, not in input order: one slow
    file does not hold up the others. Images with transparency stay RGBA: encoders composite them for
    each view, thumbnails keep it. What is handed back is what ``prepare`` made of the image, not the
    image: a decoded image can be 2,047 px of RGBA (16 MB), and ``ahead`` of them waiting for their
    turn would hold a gigabyte."""

    def __init__(self, files: Sequence[GalleryFile], prepare: Callable[[Image.Image], Any], ahead: int):
        self.files, self.prepare, self.ahead = files, prepare, ahead
        self.submitted = 0
        self.running: set[Future] = set()
        self.pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2))

    def _one(self, position: int, f: GalleryFile) -> tuple[int, GalleryFile, ImageLoadError | None, Any]:
        try:
            image = load_image(f.path, name=str(f.path), max_side=DECODE_MAX_SIDE, keep_alpha=True, coarse=True)
        except ImageLoadError as exc:
            return position, f, exc, None
        return position, f, None, self.prepare(image)

    def top_up(self, until: int) -> None:
        """Start the files before position ``until``, at most ``ahead`` running."""
        while len(self.running) < self.ahead and self.submitted < min(until, len(self.files)):
            self.running.add(self.pool.submit(self._one, self.submitted, self.files[self.submitted]))
            self.submitted += 1

    def finished(self) -> list[tuple[int, GalleryFile, ImageLoadError | None, Any]]:
        """(position, file, the error or None, what ``prepare`` made of the image) of the files done since
        the last call; waits for one when none is (and one runs)."""
        if not self.running:
            return []
        done, self.running = wait(self.running, return_when=FIRST_COMPLETED)
        return [future.result() for future in done]

    def close(self) -> None:
        for future in self.running:
            future.cancel()
        self.pool.shutdown(wait=True)


def _index_files(
    index: GalleryIndex, files: Sequence[GalleryFile], encoder: Encoder, batch_size: int, progress: bool
) -> IndexReport:
    report = IndexReport()
    todo, shas = [], {}
    for f in files:
        try:
            shas[f.gallery_id] = sha = sha256_of(f.path)
        except OSError as exc:
            report.skipped.append((str(f.path), ImageLoadError(str(f.path), exc.strerror or str(exc)).reason))
            continue
        if index.needs(f.gallery_id, sha):
            todo.append(f)
        else:
            report.unchanged.append(f.gallery_id)
    bar = tqdm(total=len(todo), desc="indexing", unit="img", disable=not progress)
    # files are embedded a group at a time, each group a fixed run of input positions (so that the vectors
    # do not depend on timing: a batch's size moves the last bits), a group as soon as all its files are
    # decoded; they are written in input order
    decoded: dict[int, list[tuple[int, GalleryFile, Any, Any]]] = {}  # group (its first position) -> (position, file, error, _Prepared)
    done: dict[int, tuple[GalleryFile, Any]] = {}  # position -> (file, error | (vectors, original size, thumbnail))
    written = 0  # files before this position are written (or refused)
    items: list[NewItem] = []
    thumbs: dict[str, bytes] = {}

    def embed(entries: list[tuple[int, GalleryFile, Any, Any]]) -> None:
        entries.sort(key=lambda entry: entry[0])
        readable: list[tuple[int, GalleryFile, _Prepared]] = [(p, f, ready) for p, f, error, ready in entries if error is None]
        done.update((position, (f, error)) for position, f, error, _ in entries if error is not None)
        if not readable:
            return
        pixels = [ready.pixels for *_, ready in readable]
        views = encoder.embed_gallery([ready.image for *_, ready in readable], batch_size=batch_size,
                                      pixels=None if None in pixels else pixels)  # N x (V, D)
        # the pictures that pages and collages hold, one vector each (of the group's crops together)
        crops = [picture for *_, ready in readable for picture in ready.held]
        held = iter(encoder.embed(crops, batch_size=batch_size) if crops else [])
        for (position, f, ready), image_views in zip(readable, views):
            (ow, oh), (w, h) = ready.original_size, ready.size
            regions = [(scale_box(box, ow / w, oh / h), next(held), role)
                       for box, role in zip(ready.boxes, ready.roles)]  # boxes in file pixels
            done[position] = (f, (image_views, ready.original_size, ready.png, regions))

    def write() -> None:
        """Files whose turn has come, in input order, into the index a batch (one transaction) at a time."""
        nonlocal written
        while written in done:
            f, result = done.pop(written)
            written += 1
            bar.update(1)
            if isinstance(result, ImageLoadError):
                report.skipped.append((str(f.path), result.reason))
                continue
            image_views, size, png, regions = result
            source = str(Path(f.path).resolve())
            items.extend(NewItem(f.gallery_id, f.label, shas[f.gallery_id], (0, 0, *size), encoder.name, source, vec)
                         for vec in image_views)
            items.extend(NewItem(f.gallery_id, f.label, shas[f.gallery_id], box, encoder.name, source, vec,
                                 parts_only=role > 0, small=role == 2)
                         for box, vec, role in regions)
            thumbs[f.gallery_id] = png
            if len(thumbs) >= batch_size:
                flush()

    def flush() -> None:
        added = index.add(items, save=False, thumbs=thumbs)
        # a gallery too big for the index it has in memory changes index on the way
        report.optimised = index.optimise(growing=True) or report.optimised
        report.added += added.added
        report.replaced += added.replaced
        report.unchanged += added.unchanged
        items.clear()
        thumbs.clear()

    config = query_config(index)  # the held pictures are found with the index's own layout settings

    def prepare(image: Image.Image) -> _Prepared:
        boxes = page_pictures(image, config.pictures, config.layout) if config.pictures.most else []
        roles = [0] * len(boxes)
        held = [to_rgb(crop(image, box)) for box in boxes]
        if trimmed := trimmed_box(image, config.pictures):
            boxes.append(trimmed)
            held.append(to_rgb(crop(image, trimmed)))
            roles.append(1)
        if small := small_view(image, config.pictures):
            boxes.append(small[0])
            held.append(small[1])
            roles.append(2)
        pixels = encoder.gallery_pixels(image)
        return _Prepared(pixels, thumbnail(image), boxes, held, roles,
                         image.info["original_size"], image.size, image if pixels is None else None)

    # each image's preprocessing for every gallery view, and its thumbnail (with its transparency: pasted
    # copies are matched on the opaque pixels), are made in the decoding threads too. Groups are shorter on
    # a CPU whose encoder takes small batches anyway: fewer files wait for a slow one.
    group = min(batch_size, 2 * encoder.cpu_batch) if encoder.cpu_batch and encoder.device.type == "cpu" else batch_size
    prefetch = _Prefetch(todo, prepare, ahead=DECODE_AHEAD * batch_size)
    try:
        while written < len(todo):
            prefetch.top_up(written + WRITE_AHEAD * batch_size)
            for entry in prefetch.finished():
                first = entry[0] - entry[0] % group
                decoded.setdefault(first, []).append(entry)
                if len(decoded[first]) == min(group, len(todo) - first):
                    embed(decoded.pop(first))
            write()
        if items:
            flush()
    finally:
        prefetch.close()
    bar.close()
    index.save()
    report.optimised = index.optimise() or report.optimised  # the index kind the gallery's size calls for
    unchanged = set(report.unchanged)
    kept = [f for f in files if f.gallery_id in unchanged]
    _backfill_thumbs(index, kept, batch_size, progress)
    report.small_views = _backfill_small(index, kept, shas, encoder, config.pictures, batch_size, progress)
    return report


def _in_batches(files: Sequence[GalleryFile], prepare: Callable[[Image.Image], Any], batch_size: int, desc: str,
                progress: bool) -> Iterator[list[tuple[GalleryFile, Any]]]:
    """(file, what ``prepare`` made of its image) for each of ``files`` that decodes (:class:`_Prefetch`:
    in threads), ``batch_size`` at a time, under a progress bar named ``desc``; a file that does not
    decode is passed over (what the index holds of it stays)."""
    if not files:
        return
    prefetch = _Prefetch(files, prepare, ahead=DECODE_AHEAD * batch_size)
    bar = tqdm(total=len(files), desc=desc, unit="img", disable=not progress)
    ready: list[tuple[GalleryFile, Any]] = []
    try:
        while prefetch.submitted < len(files) or prefetch.running:
            prefetch.top_up(len(files))
            for _, f, error, made in prefetch.finished():
                bar.update(1)
                if error is None:
                    ready.append((f, made))
                if len(ready) >= batch_size:
                    yield ready
                    ready = []
    finally:
        prefetch.close()
        bar.close()
    if ready:
        yield ready


def _backfill_thumbs(index: GalleryIndex, files: Sequence[GalleryFile], batch_size: int, progress: bool) -> None:
    """Thumbnails for indexed images that have none (an index built before they were kept): decoded
    in threads, stored a batch at a time; their vectors are not touched."""
    have = index.store.thumb_ids()
    missing = [f for f in files if f.gallery_id not in have]
    for batch in _in_batches(missing, thumbnail, batch_size, "thumbnails", progress):
        index.add_thumbs({f.gallery_id: png for f, png in batch})


def _backfill_small(index: GalleryIndex, files: Sequence[GalleryFile], shas: Mapping[str, str], encoder: Encoder,
                    config: PagePicturesConfig, batch_size: int, progress: bool) -> list[str]:
    """The shrunk view (:func:`~semcopy_lib.segment.page_pictures.small_view`) of each indexed image of
    ``files`` (``shas``: their sha256 by gallery id) that has none while ``config.small`` asks for it
    (indexed before the setting was on): decoded in threads, embedded, added beside its other vectors,
    which are not touched. Returns the gallery ids given one."""
    if config.small <= 0 or not files:
        return []
    have = index.store.small_ids(f.gallery_id for f in files)  # those rows only: an add of one file reads one file's
    missing = [f for f in files if f.gallery_id not in have]

    def prepare(image: Image.Image) -> tuple[Box, Image.Image]:
        box, view = small_view(image, config)
        (ow, oh), (w, h) = image.info["original_size"], image.size
        return scale_box(box, ow / w, oh / h), view  # the box in file pixels

    given: list[str] = []
    for batch in _in_batches(missing, prepare, batch_size, "shrunk views", progress):
        vectors = encoder.embed([view for _, (_, view) in batch], batch_size=batch_size)
        given += index.add_views([NewItem(f.gallery_id, f.label, shas[f.gallery_id], box, encoder.name,
                                          str(Path(f.path).resolve()), vec, parts_only=True, small=True)
                                  for (f, (box, _)), vec in zip(batch, vectors)])
    return given


def build_index(
    images_dir: os.PathLike | str,
    index_dir: os.PathLike | str,
    encoder: str | None = None,
    encoder_path: str | None = None,
    batch_size: int = 32,
    progress: bool = True,
    device: str | None = None,
    backend: str = "faiss",
) -> tuple[GalleryIndex, IndexReport]:
    """Index every image below ``images_dir`` into ``index_dir`` (created, or continued if it exists).

    ``encoder`` defaults to the existing index's encoder, or :data:`DEFAULT_ENCODER` for a new index.

    Raises:
        EncoderMismatch: ``index_dir`` already holds an index made with another encoder.
    """
    not_images: list[tuple[str, str]] = []
    files = scan_folder(images_dir, skipped=not_images)
    if Path(index_dir, MANIFEST).exists():
        index = GalleryIndex.open(index_dir)
        index.check_encoder(encoder or index.encoder_name)
        enc = encoder_for_index(index, device)
    else:
        enc = create_encoder(encoder or DEFAULT_ENCODER, path=encoder_path, device=device)
        index = GalleryIndex.create(index_dir, enc.config.to_dict(), enc.dim, root=images_dir, backend=backend,
                                    query=QueryConfig().to_dict(), precision=enc.precision())
    report = index_files(index, files, enc, batch_size=batch_size, progress=progress)
    report.skipped = sorted(not_images + report.skipped)
    return index, report


def _inside(path: Path, root: os.PathLike | str) -> bool:
    return path.resolve().is_relative_to(Path(root).resolve())


def expand_paths(paths: Iterable[os.PathLike | str], root: os.PathLike | str | None) -> tuple[list[GalleryFile], list[tuple[str, str]]]:
    """Files and folders given by a user -> (gallery files, [(path, reason) not usable]).

    Folders are scanned recursively; ids are relative to ``root`` when inside it (else ``parent/name``).
    """
    files, bad = [], []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            base = root if root and _inside(path, root) else path.resolve().parent
            files += [GalleryFile(f.path, gallery_id_for(f.path, base)) for f in scan_folder(path, skipped=bad)]
        elif path.is_file():
            files.append(GalleryFile(path, gallery_id_for(path, root)))
        else:
            bad.append((str(p), "no such file"))
    return files, bad


def add_paths(
    index: GalleryIndex,
    paths: Iterable[os.PathLike | str],
    encoder: Encoder | None = None,
    batch_size: int = 32,
    progress: bool = True,
    device: str | None = None,
    wait: float | None = None,
) -> IndexReport:
    """Add images (files or folders) to an existing index without a rebuild.

    ``encoder`` is reused when given (a running service's); else the index's encoder is built.
    ``wait``: seconds to wait while another process writes the index (see :func:`index_files`).
    """
    files, bad = expand_paths(paths, index.root)
    encoder = encoder if encoder is not None else encoder_for_index(index, device)
    report = index_files(index, files, encoder, batch_size=batch_size, progress=progress, wait=wait)
    report.skipped = bad + report.skipped
    return report


def sync_folder(
    index: GalleryIndex,
    folder: os.PathLike | str,
    encoder: Encoder | None = None,
    batch_size: int = 32,
    progress: bool = True,
    device: str | None = None,
    wait: float | None = None,
) -> IndexReport:
    """Make the index hold exactly the images below ``folder``: new and changed files are embedded
    (:func:`index_files`: resumable, unchanged files are not read again), and the ids of files that
    came from ``folder`` and are gone from it, or can no longer be read, are removed
    (``report.removed``). Images the index took from anywhere else (dashboard uploads, other folders) stay.

    Raises:
        NotADirectoryError: ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: not a folder")
    files, bad = expand_paths([folder], index.root)
    present = {f.gallery_id for f in files}
    inside = folder.resolve()
    with index.writing(wait):
        gone = sorted({r.gallery_id for r in index.records()
                       if r.gallery_id not in present and r.source and Path(r.source).is_relative_to(inside)})
        if gone:
            index.remove(gone)
        encoder = encoder if encoder is not None else encoder_for_index(index, device)
        report = _index_files(index, files, encoder, batch_size, progress)
        # a file that can no longer be read (overwritten, truncated) is no image of the folder: its old
        # vectors go too, as a deleted file's do
        refused = {path for path, _ in report.skipped}
        unreadable = {f.gallery_id for f in files if str(f.path) in refused}
        stale = sorted(unreadable & {r.gallery_id for r in index.records()})
        if stale:
            index.remove(stale)
    report.skipped = bad + report.skipped
    report.removed = gone + stale
    return report


def watch_folder(index: GalleryIndex, folder: os.PathLike | str, on_sync: Callable[[IndexReport], None],
                 debounce_ms: int = WATCH_DEBOUNCE_MS, stop_event: Any = None, **sync: Any) -> None:
    """Sync ``folder`` (:func:`sync_folder`) now and again after each burst of changes in it (events
    gathered for ``debounce_ms``), until ``stop_event`` is set or the process is interrupted; each
    report goes to ``on_sync``. The encoder is loaded once."""
    from watchfiles import watch

    sync.setdefault("encoder", encoder_for_index(index, sync.pop("device", None)))
    first = True
    # the first sync runs once the watcher is up (its first, empty, yield), so no change is missed
    for changes in watch(folder, debounce=debounce_ms, stop_event=stop_event, yield_on_timeout=True, rust_timeout=200):
        if changes or first:
            first = False
            on_sync(sync_folder(index, folder, **sync))
