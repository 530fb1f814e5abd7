"""A gallery index directory: manifest + SQLite metadata/vectors + a vector backend file.

```
INDEX_DIR/
  manifest.json   {"format_version", "backend", "encoder": {EncoderConfig}, "query": {QueryConfig}, "dim", "count",
                   "vectors": N, "generation", "root", "name": a unique name (a Milvus collection's)}
  meta.sqlite     one row per vector (the source of truth, see store.py), one thumbnail per image
  vectors.faiss   the search structure; rebuilt from meta.sqlite when it is behind
  write.lock      held (flock) by the one process writing; see lock.py
```

Durability: every change is one SQLite transaction; the vector file and manifest are written to a temp
file and renamed, vector file first, so a manifest never vouches for vectors that are not there. A
crash (even ``kill -9``) at any moment leaves SQLite consistent; the next open sees the vector file
behind (generation or count) and rebuilds it from SQLite. Writers hold ``write.lock``; before writing
they catch up with what another writer committed, and searches catch up with new generations too.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from semcopy_lib.data.loading import is_image_path
from semcopy_lib.index.backends import BACKENDS, StoreInUse, VectorBackend
from semcopy_lib.index import compressed
from semcopy_lib.index.lock import IndexLocked, WriteLock
from semcopy_lib.index.store import Box, MetadataStore, NewItem, Record

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
METADATA = "meta.sqlite"
#: The folder inside an index that holds images added by upload.
UPLOADS = "uploads"
#: Vectors up to which search stays exact (flat): up to here an exact scan still costs a query little;
#: beyond, an IVF-SQ8 index answers much faster at a small loss of recall (`semcopy bench speed`).
FLAT_MAX = 50_000


class IndexDirError(ValueError):
    """An index directory is missing, not an index, or of an unknown format."""


class EncoderMismatch(ValueError):
    """Queries were embedded with another encoder than the index was built with."""


@dataclass(frozen=True)
class Hit:
    """One gallery image found for one query vector."""

    gallery_id: str
    score: float
    label: str
    source: str
    gallery_box: Box


@dataclass(frozen=True)
class AddReport:
    """What :meth:`GalleryIndex.add` did: gallery ids added, replaced (new content) and unchanged."""

    added: list[str]
    replaced: list[str]
    unchanged: list[str]


def _new_name() -> str:
    """A name no other index has: what a backend whose store indexes share (a Milvus server) calls it."""
    return f"semcopy_{uuid.uuid4().hex}"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temp file, fsync, then rename over ``path``."""
    tmp = Path(f"{path}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of an index directory.

    Raises:
        IndexDirError: no manifest, an unreadable one, or another format version.
    """
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise IndexDirError(f"{directory}: not a semcopy index (no {MANIFEST}); build one with 'semcopy index build'")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexDirError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict):
        raise IndexDirError(f"{path}: not a semcopy manifest (a JSON object expected)")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexDirError(f"{path}: index format {manifest.get('format_version')!r}, this semcopy reads {FORMAT_VERSION}")
    encoder = manifest.get("encoder")
    if not isinstance(encoder, dict) or not isinstance(encoder.get("name"), str):
        raise IndexDirError(f"{path}: the manifest names no encoder")
    dim = manifest.get("dim")
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        raise IndexDirError(f"{path}: the manifest's dim {dim!r} is not a vector size")
    return manifest


def _open_store(path: Path, read_only: bool = False) -> MetadataStore:
    """The index's SQLite store (:class:`MetadataStore`); a file that is not one is an
    :class:`IndexDirError` naming it."""
    try:
        return MetadataStore(path, read_only=read_only)
    except sqlite3.OperationalError as exc:
        if not os.access(path.parent, os.W_OK):
            raise IndexDirError(f"{path.parent}: a read-only folder ({exc}): it can be searched, not changed") from None
        raise IndexDirError(f"{path}: cannot be opened ({exc})") from None
    except sqlite3.DatabaseError as exc:
        raise IndexDirError(f"{path}: not a readable SQLite database ({exc}); rebuild the index from the images "
                            "with 'semcopy index build'") from None


class GalleryIndex:
    """Add / remove / search / save / load over one index directory."""

    def __init__(self, directory: Path, manifest: dict[str, Any], store: MetadataStore, backend: VectorBackend,
                 read_only: bool = False):
        self.directory = Path(directory)
        self.manifest = manifest
        self.store = store
        self.backend = backend
        self.read_only = read_only
        self.lock = WriteLock(self.directory)
        self._generation = store.generation  # the SQLite generation the backend holds
        self._images: tuple[int, int] | None = None  # (generation, number of gallery images)

    # -- opening -----------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        directory: os.PathLike | str,
        encoder: dict[str, Any],
        dim: int,
        root: os.PathLike | str | None = None,
        backend: str = "faiss",
        query: dict[str, Any] | None = None,
        precision: str | None = None,
    ) -> "GalleryIndex":
        """A new, empty index in ``directory`` (created if needed; must not hold an index yet).

        Args:
            encoder: the encoder's ``EncoderConfig.to_dict()``; queries must use the same encoder.
            dim: vector dimension D.
            root: the gallery folder that ids are relative to, when there is one.
            query: the search settings to keep with the index (``QueryConfig.to_dict()``).
            precision: what the encoder embeds the gallery in (``Encoder.precision()``: ``fp32``,
                ``mixed-bf16``...), so that later queries and additions can match it.
        """
        directory = Path(directory)
        creatable = [name for name, cls in BACKENDS.items() if getattr(cls, "CREATABLE", True)]
        if backend not in creatable:
            raise IndexDirError(f"unknown index backend {backend!r}; known: {', '.join(creatable)}")
        if directory.exists() and not directory.is_dir():
            raise IndexDirError(f"{directory}: not a folder")
        directory.mkdir(parents=True, exist_ok=True)
        lock = WriteLock(directory)
        with lock:  # two creators: the second fails clearly (and finds the manifest next time)
            if (directory / MANIFEST).exists():
                raise IndexDirError(f"{directory}: already holds an index")
            manifest = {
                "format_version": FORMAT_VERSION,
                "backend": backend,
                "encoder": encoder,
                "dim": int(dim),
                "count": 0,
                "vectors": 0,
                "generation": 0,
                "root": str(Path(root).resolve()) if root else None,
                "query": query,
                "precision": precision,
                "name": _new_name(),
            }
            backend_cls = BACKENDS[backend]
            index = cls(directory, manifest, MetadataStore(directory / METADATA),
                        backend_cls(int(dim), path=directory / backend_cls.FILE, name=manifest["name"]))
            index.lock = lock
            index.save()
        return index

    @classmethod
    def open(cls, directory: os.PathLike | str, read_only: bool = False) -> "GalleryIndex":
        """Load an index; the backend file is rebuilt from SQLite if it is missing or behind.

        ``read_only``: memory-map the vectors (searching only: a big index opens at once, and processes
        searching one index share its pages); adding or removing then raises.
        """
        directory = Path(directory)
        manifest = read_manifest(directory)
        if manifest.get("backend", "faiss") not in BACKENDS:
            raise IndexDirError(f"{directory / MANIFEST}: unknown backend {manifest.get('backend')!r}")
        index = cls(directory, manifest, _open_store(directory / METADATA, read_only), None, read_only=read_only)
        index._load_backend()
        return index

    def _load_backend(self) -> None:
        """Load the vector file when it matches SQLite, else rebuild it from SQLite (and, when this
        process may write and no one else is writing, save it and make a big index IVF again)."""
        backend_cls = BACKENDS[self.manifest.get("backend", "faiss")]
        vectors = self.directory / backend_cls.FILE
        generation = self.store.generation
        if self.manifest.get("generation") == generation:
            try:
                backend = backend_cls.load(vectors, self.dim, read_only=self.read_only, name=self.manifest.get("name"))
            except (FileNotFoundError, StoreInUse):
                backend = None
            except RuntimeError:  # FAISS could not read it (truncated, overwritten): rebuilt from SQLite below
                log.warning("%s: unreadable; rebuilding it from %s", vectors, METADATA)
                backend = None
            except ValueError as exc:  # vectors of another size than the manifest's
                raise IndexDirError(" ".join(str(exc).split())) from None
            if backend is not None and backend.count == self.store.count():
                self.backend, self._generation = backend, generation
                return
            if backend is not None:
                backend.close()
        if hasattr(backend_cls, "rebuild"):  # made from the stored vectors in two streamed passes
            self._rebuild_stream(backend_cls, vectors, generation)
            return
        try:  # behind or missing: SQLite is the truth
            backend = backend_cls(self.dim, path=vectors, name=self.manifest.get("name"))
        except StoreInUse as exc:
            if self.read_only:
                raise IndexDirError(f"{self.directory}: {exc}; open it once for writing to give it its own") from exc
            # a copy of another index's folder, or one made before names were kept: a name of its own
            self.manifest["name"] = _new_name()
            backend = backend_cls(self.dim, path=vectors, name=self.manifest["name"])
        for ids, vecs in self.store.iter_vectors(self.dim):
            backend.add(ids, vecs)
        self.backend, self._generation = backend, generation
        if self.read_only:
            return
        try:
            with self.lock:
                if self.store.generation == generation:
                    self.save()
                    self.optimise()  # a big index is IVF again (retrained from the vectors SQLite holds)
        except IndexLocked:
            pass  # another process is writing: it will save; this one searches what it rebuilt

    def _rebuild_stream(self, backend_cls: type[VectorBackend], vectors: Path, generation: int) -> None:
        """Bring a backend that only builds from SQLite (the compressed one) up to ``generation``, saved.
        A read-only open, or one while another process writes, searches the one last saved instead (a
        rebuild takes minutes and writes files), and loads it again once a newer one is saved."""
        if not self.read_only:
            try:
                with self.lock:
                    if self.store.generation == generation:
                        self.backend = self._from_store(backend_cls)
                        self._generation = generation
                        self.save()
                        return
            except IndexLocked:
                pass
        saved = self.manifest.get("generation")
        if self.backend is not None and self._saved == saved:
            return  # nothing newer saved since it was loaded
        try:
            backend = backend_cls.load(vectors, self.dim, read_only=self.read_only, name=self.manifest.get("name"))
        except (FileNotFoundError, ValueError) as exc:
            if self.backend is not None and isinstance(exc, ValueError):
                self._generation = -1
                return  # being saved right now: the one loaded before answers, the next search looks again
            raise IndexDirError(f"{self.directory}: {backend_cls.FILE} is missing or unreadable; open the index "
                                "for writing (no other process writing) to rebuild it") from None
        self.backend, self._saved = backend, saved
        self._generation = generation if saved == generation else -1  # -1: look again at each search

    def _from_store(self, backend_cls: type[VectorBackend]) -> VectorBackend:
        """A backend that builds from SQLite in streamed passes (``rebuild``), made in its file of this folder."""
        return backend_cls.rebuild(self.dim, self.directory / backend_cls.FILE,
                                   lambda: self.store.iter_vectors(self.dim), self.store.count())

    _saved: int | None = None  # the manifest generation of a read-only compressed backend loaded behind SQLite

    def refresh(self) -> bool:
        """Catch up with changes another process committed; True when there were any."""
        if self.store.generation == self._generation:
            return False
        try:
            self.manifest = read_manifest(self.directory)
        except IndexDirError:
            pass  # being replaced right now: the vector file check below rebuilds from SQLite
        old = self.backend
        self._load_backend()
        if old is not self.backend:
            old.close()
        return True

    @contextmanager
    def writing(self, wait: float | None = None) -> Iterator["GalleryIndex"]:
        """Hold the index's write lock (re-entrant), caught up with other writers first.

        Raises:
            IndexLocked: another process holds it for longer than ``wait`` seconds (default: the lock's).
        """
        if self.read_only:
            raise IndexDirError(f"{self.directory}: opened read-only; open it without read_only to change it")
        self.lock.acquire(wait)
        try:
            self.refresh()
            yield self
        finally:
            self.lock.release()

    # -- facts -------------------------------------------------------------------------------
    @property
    def encoder_config(self) -> dict[str, Any]:
        return dict(self.manifest["encoder"])

    @property
    def encoder_name(self) -> str:
        return self.manifest["encoder"]["name"]

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def root(self) -> Path | None:
        return Path(self.manifest["root"]) if self.manifest.get("root") else None

    @property
    def uploads(self) -> Path:
        """The folder inside the index that holds images added by upload (dashboard, API)."""
        return self.directory / UPLOADS

    def image_file(self, source: str | None) -> Path | None:
        """``source`` (a record's file) when it is an image file inside the gallery folder or the uploads;
        None otherwise. Every read of a file a record names goes through here: an index's records could
        name any path."""
        path = Path(source).resolve() if source else None
        roots = [r.resolve() for r in (self.root, self.uploads) if r is not None]
        if path is None or not path.is_file() or not is_image_path(path) or not any(path.is_relative_to(r) for r in roots):
            return None
        return path

    def gallery_file(self, gallery_id: str) -> Path | None:
        """The file of ``gallery_id`` (:meth:`image_file`); None when it has none that may be read."""
        return self.image_file(self.store.source_of(gallery_id))

    def __len__(self) -> int:
        """Number of gallery images (not vectors); counted again only after a change."""
        generation = self.store.generation
        if self._images is None or self._images[0] != generation:
            self._images = (generation, self.store.count_images())
        return self._images[1]

    def info(self) -> dict[str, Any]:
        """``{"count": images, "encoder": name, "dim": D, ...}`` as ``index info --json`` prints."""
        return {
            "count": len(self),
            "encoder": self.encoder_name,
            "dim": self.dim,
            "vectors": self.backend.count,
            "backend": self.manifest["backend"],
            "vector_index": getattr(self.backend, "kind", self.manifest["backend"]),
            "root": self.manifest.get("root"),
            "path": str(self.directory),
            "query": self.manifest.get("query"),
            "precision": self.manifest.get("precision"),
        }

    def check_encoder(self, name: str) -> None:
        """Raise :class:`EncoderMismatch` unless ``name`` is the encoder this index was built with."""
        if name != self.encoder_name:
            raise EncoderMismatch(
                f"{self.directory}: index was built with encoder {self.encoder_name!r}, not {name!r}; "
                f"search with --encoder {self.encoder_name} or rebuild the index"
            )

    def needs(self, gallery_id: str, sha256: str) -> bool:
        """False when ``gallery_id`` is indexed with exactly this content (adding it is a no-op)."""
        return self.store.sha_of(gallery_id) != sha256

    def records(self) -> list[Record]:
        return self.store.all_records()

    def thumbs(self, gallery_ids: Iterable[str]) -> dict[str, bytes]:
        """PNG thumbnails by gallery id, for those ids that have one (indexes built before thumbnails were kept have none)."""
        return self.store.thumbs(gallery_ids)

    def add_thumbs(self, thumbs: Mapping[str, bytes]) -> None:
        """Keep thumbnails for images already indexed (an index built before thumbnails were kept)."""
        with self.writing():
            self.store.put_thumbs({g: png for g, png in thumbs.items() if self.store.sha_of(g) is not None})

    def image_vectors(self, every: list[Record] | None = None) -> tuple[list[Record], np.ndarray]:
        """One vector per gallery image (its first view, e.g. the 224-px one) with its record.

        Args:
            every: :meth:`records`, when the caller has read them already (one read of the store, not two).

        Returns:
            (records, (N, D) float32 unit rows), in id order.
        """
        records = {r.id: r for r in (every if every is not None else self.records())}
        seen, keep, rows = set(), [], []
        for ids, vectors in self.store.iter_vectors(self.dim):
            for i, v in zip(ids.tolist(), vectors):
                if records[i].gallery_id not in seen:
                    seen.add(records[i].gallery_id)
                    keep.append(records[i])
                    rows.append(v)
        return keep, np.asarray(rows, dtype=np.float32).reshape(-1, self.dim)

    # -- changing ----------------------------------------------------------------------------
    def add(self, items: Sequence[NewItem], save: bool = True, thumbs: Mapping[str, bytes] | None = None) -> AddReport:
        """Add vectors; an id already indexed with the same sha256 is a no-op, with another one it is replaced.

        Args:
            items: regions to add; all items of one gallery id must come in the same call.
            save: write the backend file and manifest now (a build saves once at the end).
            thumbs: PNG thumbnails by gallery id (:func:`semcopy_lib.segment.template.thumbnail`), stored
                with the items of those ids that are added or replaced.
        """
        self._check_items(items)
        with self.writing():
            new, replace, unchanged, seen = [], [], [], {}
            for item in items:
                if item.gallery_id not in seen:
                    old = self.store.sha_of(item.gallery_id)
                    seen[item.gallery_id] = old
                    if old == item.sha256:
                        unchanged.append(item.gallery_id)
                    elif old is None:
                        new.append(item.gallery_id)
                    else:
                        replace.append(item.gallery_id)
            todo = [it for it in items if seen[it.gallery_id] != it.sha256]
            if todo or replace:
                changed = {it.gallery_id for it in todo}
                self._write(todo, replace, {g: png for g, png in (thumbs or {}).items() if g in changed}, save)
            return AddReport(new, replace, unchanged)

    def add_views(self, items: Sequence[NewItem]) -> list[str]:
        """Add vectors beside those of images already indexed with the same content (a kind of view kept
        since they were indexed), their other vectors untouched; items of an id not indexed, or indexed
        with another sha256, are passed over. Returns the gallery ids given vectors."""
        self._check_items(items)
        with self.writing():
            todo = [it for it in items if self.store.sha_of(it.gallery_id) == it.sha256]
            if todo:
                self._write(todo)
            return list(dict.fromkeys(it.gallery_id for it in todo))

    def _check_items(self, items: Sequence[NewItem]) -> None:
        """Raise when an item is of another encoder than the index's or not of its dimension."""
        for item in items:
            self.check_encoder(item.encoder)
            if item.vector.shape != (self.dim,):
                raise ValueError(f"{item.gallery_id}: vector shape {item.vector.shape}, index dimension is {self.dim}")

    def _write(self, add: Sequence[NewItem] = (), remove: Sequence[str] = (), thumbs: Mapping[str, bytes] | None = None,
               save: bool = True) -> None:
        """Remove the images ``remove`` and add the vectors ``add`` (and ``thumbs``) in SQLite, one
        transaction, then in the vector backend; the backend file and manifest are written with ``save``.
        Inside :meth:`writing`."""
        added_ids, removed_ids = self.store.write(add=add, remove_gallery_ids=remove, thumbs=thumbs)
        self._generation = self.store.generation
        self.backend.remove(np.array(removed_ids, dtype=np.int64))
        if add:
            self.backend.add(np.array(added_ids, dtype=np.int64), np.stack([it.vector for it in add]))
        if save:
            self.save()

    def remove(self, gallery_ids: Iterable[str], save: bool = True) -> list[str]:
        """Remove gallery images by id. Returns the ids that were not in the index."""
        gallery_ids = list(dict.fromkeys(gallery_ids))
        with self.writing():
            missing = [g for g in gallery_ids if self.store.sha_of(g) is None]
            present = [g for g in gallery_ids if g not in missing]
            if present:
                self._write(remove=present, save=save)
            return missing

    def optimise(self, force: bool = False, growing: bool = False) -> dict | None:
        """The FAISS index its size calls for: exact up to :data:`FLAT_MAX` vectors, IVF-SQ8 beyond (or
        with ``force``), and past :data:`~semcopy_lib.index.compressed.SQ8_MAX_BYTES` of 8-bit vectors the
        compressed index (short list in memory, 8-bit vectors memory-mapped), rebuilt from SQLite.
        ``growing`` (a build between batches): only the changes that memory needs, a flat index turned
        IVF once its float32 vectors pass that budget. Returns the report of the change (recall@20
        against exact search on stored vectors, bytes), else None."""
        backend = self.backend
        if self.manifest.get("backend", "faiss") != "faiss" or not hasattr(backend, "to_ivf"):
            return None
        if backend.count * self.dim > compressed.SQ8_MAX_BYTES:
            with self.writing():
                self.backend = self._from_store(compressed.CompressedBackend)
                self.manifest.update(backend="compressed", vector_index=self.backend.report)
                self.save()
                (self.directory / backend.FILE).unlink(missing_ok=True)
                return self.backend.report
        big = backend.count * self.dim * 4 > compressed.SQ8_MAX_BYTES if growing else (force or backend.count > FLAT_MAX)
        if backend.kind != "flat" or not big or backend.count < 2:
            return None
        with self.writing():
            report = self.backend.to_ivf()
            self.manifest["vector_index"] = report
            self.save()
            return report

    def save(self) -> None:
        """Write the backend file, then the manifest that vouches for it (both atomically)."""
        with self.writing():
            self.backend.save(self.directory / self.backend.FILE)
            self.manifest.update(
                count=len(self), vectors=self.backend.count, generation=self._generation
            )
            write_json_atomic(self.directory / MANIFEST, self.manifest)

    def set_query(self, query: dict[str, Any]) -> None:
        """Keep other search settings (``QueryConfig.to_dict()``) with the index: only the manifest is rewritten."""
        with self.writing():
            self.manifest["query"] = query
            write_json_atomic(self.directory / MANIFEST, self.manifest)

    def close(self) -> None:
        self.lock.release()
        self.store.close()
        self.backend.close()

    # -- searching ---------------------------------------------------------------------------
    def search_vectors(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw top-k over vectors: queries (Q, D) -> (scores (Q, k), vector ids (Q, k), -1 = none)."""
        return self.backend.search(queries, k)

    def search(self, queries: np.ndarray, k: int = 10, encoder: str | None = None,
               whole: bool = False, small: Sequence[bool] | None = None) -> list[list[Hit]]:
        """Top-k gallery images per query vector, each gallery id once (its best vector wins).

        Args:
            queries: (Q, D) float32, L2-normalised, made by this index's encoder.
            k: hits per query.
            encoder: the name of the encoder that made ``queries``; checked when given.
            whole: the queries are whole images: the vectors kept for a query's parts only
                (:attr:`~semcopy_lib.index.store.Record.parts_only`) are passed over.
            small: per query, whether it is a small part: the vectors kept for small parts
                (:attr:`~semcopy_lib.index.store.Record.small`) are passed over by the others.

        Returns:
            Q lists of at most k :class:`Hit`, best first (score = cosine similarity).
        """
        if encoder is not None:
            self.check_encoder(encoder)
        self.refresh()  # another process (a build, another dashboard session) may have added images
        queries = np.asarray(queries, dtype=np.float32).reshape(-1, self.dim)
        count = self.backend.count
        fetch = min(count, k * max(1, count // max(1, len(self))) * 2) or k
        while True:
            scores, ids = self.search_vectors(queries, fetch)
            records = self.store.records({int(i) for i in ids.ravel() if i >= 0})
            results, short = [], False
            for row, (row_scores, row_ids) in enumerate(zip(scores, ids)):
                best: dict[str, Hit] = {}
                tiny = small is not None and small[row] and not whole
                for score, vid in zip(row_scores, row_ids):
                    rec = records.get(int(vid))
                    if (rec is None or rec.gallery_id in best or (whole and rec.parts_only)
                            or (rec.small and not tiny)):
                        continue
                    best[rec.gallery_id] = Hit(rec.gallery_id, float(score), rec.label, rec.source, rec.box)
                    if len(best) == k:
                        break
                results.append(list(best.values()))
                # its vectors, all of an image's views or kept for parts, ran out before k images while
                # the backend had more to give: more are fetched
                short |= len(best) < k and len(row_ids) == fetch and row_ids[-1] >= 0
            if not short or fetch >= count:
                return results
            fetch = min(count, fetch * 4)
