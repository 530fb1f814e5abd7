"""``semcopy index verify``: is an index directory consistent, and how to repair it when it is not.

SQLite (``meta.sqlite``) is the truth; the vector file and the manifest are derived from it. So a
vector file that is behind, missing or wrong is repaired by rebuilding it from SQLite, while a damaged
SQLite file can only be rebuilt from the images.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from semcopy_lib.data.folders import sha256_of
from semcopy_lib.index.backends import BACKENDS
from semcopy_lib.index.directory import MANIFEST, METADATA, GalleryIndex, read_manifest, write_json_atomic
from semcopy_lib.index.lock import WriteLock
from semcopy_lib.index.store import MetadataStore

#: What to do when SQLite itself is wrong.
FROM_IMAGES = "rebuild from the images: semcopy index build IMAGES_DIR --index NEW_DIR"
#: Stored vectors searched for themselves to check the vector file answers like SQLite says.
SELF_SEARCH_SAMPLE = 64


@dataclass
class VerifyReport:
    """What ``index verify`` found. ``problems`` make the index inconsistent; ``warnings`` do not."""

    path: str
    images: int = 0
    vectors: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    repair: str | None = None  # the command that fixes the problems, when one does
    repairable: bool = False  # what --repair fixes: a vector file behind SQLite, rows stored twice, temp files left by a crash

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"ok": self.ok, **asdict(self)}


def _check_store(store: MetadataStore, dim: int, report: VerifyReport) -> tuple[int, set[str]]:
    """Rows: dimension, finite unit vectors, one content (sha256) per image, no row twice. Returns
    the number of rows stored twice (what ``--repair`` can drop) and the gallery ids that have a
    shrunk view (read in the same pass)."""
    conn = store.conn
    seen_rows: set[tuple[str, str, int, bytes]] = set()
    shas: dict[str, str] = {}
    bad_dim = bad_norm = twice = mixed = 0
    small: set[str] = set()
    rows = conn.execute("SELECT gallery_id, sha256, box, parts_only, vector FROM items ORDER BY id")
    for gid, sha, box, role, blob in rows:
        if role == 2:
            small.add(gid)
        if len(blob) != 4 * dim:
            bad_dim += 1
            continue
        vec = np.frombuffer(blob, dtype=np.float32)
        if not np.isfinite(vec).all() or abs(float(vec @ vec) - 1.0) > 1e-3:
            bad_norm += 1
        key = (gid, box, role, blob)  # a small picture's shrunk view is the picture itself: another role
        twice += key in seen_rows
        seen_rows.add(key)
        if shas.setdefault(gid, sha) != sha:
            mixed += 1
    for n, what in ((bad_dim, f"rows whose vector is not {dim} float32 values"),
                    (bad_norm, "rows whose vector is not finite and unit length"),
                    (twice, "rows stored twice (an earlier row of the image has the same box, role and vector)"),
                    (mixed, "rows of an image with another content (sha256) than its other rows")):
        if n:
            report.problems.append(f"meta.sqlite: {n} {what}")
    return twice, small


def _check_backend(directory: Path, manifest: dict, store: MetadataStore, report: VerifyReport) -> bool:
    """The vector file: present, of the generation and size SQLite has, answering with SQLite's ids.
    Returns True when it is behind or wrong (a rebuild from SQLite fixes it)."""
    backend_cls = BACKENDS.get(manifest.get("backend", "faiss"))
    if backend_cls is None:
        report.problems.append(f"{MANIFEST}: unknown backend {manifest.get('backend')!r}")
        return False
    path = directory / backend_cls.FILE
    if not path.exists():
        report.problems.append(f"{backend_cls.FILE}: missing")
        return True
    if manifest.get("generation") != store.generation:
        report.problems.append(
            f"{backend_cls.FILE}: generation {manifest.get('generation')} in the manifest, "
            f"{store.generation} in meta.sqlite (an interrupted write; the next open rebuilds it)")
        return True
    try:
        backend = backend_cls.load(path, int(manifest["dim"]), read_only=True, name=manifest.get("name"))
    except Exception as exc:  # a damaged file: FAISS and Milvus raise their own types
        report.problems.append(f"{backend_cls.FILE}: unreadable ({type(exc).__name__}: {exc})")
        return True
    try:
        if backend.count != report.vectors:
            report.problems.append(f"{backend_cls.FILE}: {backend.count} vectors, meta.sqlite has {report.vectors}")
            return True
        ids = [r[0] for r in store.conn.execute(
            "SELECT id FROM items ORDER BY RANDOM() LIMIT ?", (SELF_SEARCH_SAMPLE,))]
        if ids:
            marks = ",".join("?" * len(ids))
            rows = store.conn.execute(f"SELECT id, vector FROM items WHERE id IN ({marks})", ids).fetchall()
            vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
            _, found = backend.search(vecs, 5)
            lost = sum(int(r[0]) not in set(f.tolist()) for r, f in zip(rows, found))
            approximate = "IVF" in str(getattr(backend, "kind", ""))
            if lost > (0.05 * len(rows) if approximate else 0):
                report.problems.append(
                    f"{backend_cls.FILE}: {lost} of {len(rows)} sampled vectors are not found by searching for them")
                return True
    finally:
        backend.close()
    return False


def verify(directory: os.PathLike | str, check_files: bool = True, small: int = 0) -> VerifyReport:
    """Check one index directory without changing it.

    Args:
        check_files: also check that indexed image files still exist with the same content (warnings).
        small: the side of the shrunk views its search settings ask for (``pictures.small``; 0: none):
            images indexed without one are a warning (a sync gives them theirs).

    Raises:
        IndexDirError: ``directory`` is not an index (no readable manifest).
    """
    directory = Path(directory)
    report = VerifyReport(str(directory))
    manifest = read_manifest(directory)
    if not (directory / METADATA).is_file():
        report.problems.append(f"{METADATA}: missing; rebuild the index from the images with 'semcopy index build'")
        return report
    try:
        store = MetadataStore(directory / METADATA, read_only=True)
    except sqlite3.DatabaseError as exc:
        report.problems.append(f"{METADATA}: not a readable SQLite database ({exc})")
        report.repair = f"{FROM_IMAGES} (the vectors in {directory} cannot be trusted)"
        return report
    try:
        integrity = store.conn.execute("PRAGMA integrity_check").fetchone()[0]
        if integrity != "ok":
            report.problems.append(f"{METADATA}: damaged ({integrity})")
            report.repair = f"{FROM_IMAGES} (the vectors in {directory} cannot be trusted)"
            return report
        report.images, report.vectors = store.count_images(), store.count()
        twice, small_ids = _check_store(store, int(manifest["dim"]), report)
        # rows stored twice are dropped by --repair; any other problem of SQLite's needs the images
        sqlite_ok = len(report.problems) == (1 if twice else 0)
        behind = _check_backend(directory, manifest, store, report)
        if (behind or twice) and sqlite_ok:
            report.repair = (f"semcopy index verify --index {directory} --repair ("
                             + ("drops the rows stored twice and " if twice else "") + "rebuilds the vector file from meta.sqlite)")
            report.repairable = True
        elif not sqlite_ok:
            report.repair = FROM_IMAGES
        sync = f"'semcopy index sync {manifest['root']} --index {directory}'" if manifest.get("root") else \
            "'semcopy index sync FOLDER --index DIR'"
        if small > 0 and (lacking := report.images - len(small_ids)):
            report.warnings.append(f"{lacking} indexed images have no shrunk view, which the search settings ask for "
                                   f"(pictures.small {small}; indexed before it was on): {sync} gives them theirs")
        if check_files:
            missing, changed = [], []
            for source, sha in store.conn.execute("SELECT source, MIN(sha256) FROM items GROUP BY gallery_id"):
                try:
                    if sha256_of(source) != sha:
                        changed.append(source)
                except OSError:
                    missing.append(source)
            if missing:
                report.warnings.append(f"{len(missing)} indexed image files are gone (search still finds their vectors; "
                                       f"{sync} removes them): {_some(missing)}")
            if changed:
                report.warnings.append(f"{len(changed)} indexed image files changed since ({sync} indexes them again): "
                                       f"{_some(changed)}")
    except sqlite3.DatabaseError as exc:
        report.problems.append(f"{METADATA}: unreadable ({exc})")
        report.repair = FROM_IMAGES
    finally:
        store.close()
    leftovers = sorted(p.name for p in directory.glob("*.tmp"))
    if leftovers:
        report.warnings.append(f"left over from an interrupted write (harmless, --repair deletes them): {', '.join(leftovers)}")
        report.repairable = report.repairable or not report.problems
    return report


def repair(directory: os.PathLike | str, rebuild: bool = True) -> VerifyReport:
    """Delete temp files left by a crash and (``rebuild``) drop SQLite's rows stored twice and rebuild
    the vector file from SQLite; returns a new verify.

    Raises:
        IndexLocked: another process is writing the index.
    """
    directory = Path(directory)
    with WriteLock(directory):
        for tmp in directory.glob("*.tmp"):
            tmp.unlink()
        if rebuild:
            store = MetadataStore(directory / METADATA)
            try:
                store.drop_twice_stored()
            finally:
                store.close()
            manifest = read_manifest(directory)
            backend_file = directory / BACKENDS[manifest.get("backend", "faiss")].FILE
            if backend_file.exists() and manifest.get("backend", "faiss") == "faiss":
                backend_file.unlink()  # open() rebuilds a missing vector file from SQLite and saves it
            manifest["generation"] = -1  # whatever the backend, it is behind: rebuilt on open
            write_json_atomic(directory / MANIFEST, manifest)
    if rebuild:
        GalleryIndex.open(directory).close()
    return verify(directory, check_files=False)


def _some(paths: list[str], most: int = 5) -> str:
    """The first ``most`` of ``paths``, comma-separated, and how many more."""
    return ", ".join(paths[:most]) + (f" and {len(paths) - most} more" if len(paths) > most else "")
