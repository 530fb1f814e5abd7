"""The gallery's metadata and vectors in SQLite: the source of truth of an index directory.

One row per indexed vector: a stable integer id (the FAISS id), the gallery id (relative POSIX path),
its class (parent folder), the file's sha256, the image region the vector describes, the encoder that
made it, where the file was read from, whether only region searches see it, and the float32 vector
itself; and one small thumbnail per gallery image (:func:`semcopy_lib.segment.template.thumbnail`).
Every change is one transaction.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import numpy as np

from semcopy_lib.data.boxes import Box

#: Values of one ``IN (...)`` list: SQLite builds before 3.32 take at most 999 variables a statement.
SQL_VARIABLES = 900

#: Records kept in memory by :meth:`MetadataStore.records` (about 0.5 kB each): a search's candidates
#: repeat from query to query, and reading a thousand rows costs milliseconds.
RECORD_CACHE = 50_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    gallery_id TEXT NOT NULL,
    label      TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    box        TEXT NOT NULL,
    encoder    TEXT NOT NULL,
    source     TEXT NOT NULL,
    vector     BLOB NOT NULL,
    parts_only INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS items_gallery_id ON items (gallery_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS thumbs (gallery_id TEXT PRIMARY KEY, png BLOB NOT NULL);
"""


@dataclass(frozen=True)
class Record:
    """Metadata of one indexed vector (the vector itself is returned separately).

    ``parts_only``: the vector is for searches by a query's parts only, not by whole images (a drawing
    trimmed to what shows of it: a whole query is a whole canvas, a part is cut tight around what shows).
    ``small``: ... and only by small parts (the drawing shrunk: pasted small, it is blurred like that);
    stored as ``parts_only`` 2.
    """

    id: int
    gallery_id: str
    label: str
    sha256: str
    box: Box
    encoder: str
    source: str
    parts_only: bool = False
    small: bool = False


@dataclass(frozen=True)
class NewItem:
    """An image region to add: everything of a :class:`Record` but its id, plus its vector (D,)."""

    gallery_id: str
    label: str
    sha256: str
    box: Box
    encoder: str
    source: str
    vector: np.ndarray
    parts_only: bool = False
    small: bool = False  # implies parts_only


class MetadataStore:
    """SQLite table of indexed vectors with a generation counter bumped by every write."""

    def __init__(self, path: Path, read_only: bool = False):
        """``read_only``: only read. On a read-only file system SQLite cannot make the files of its
        write-ahead log: a file whose log holds writes is then read through the log's existing files,
        one without such a log as immutable (nothing can change it there)."""
        self.path = Path(path)
        try:
            self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.executescript(_SCHEMA)
            self._upgrade()
        except sqlite3.OperationalError:
            if not read_only or os.access(self.path.parent, os.W_OK):
                raise
            wal = self.path.with_name(self.path.name + "-wal")
            logged = wal.is_file() and wal.stat().st_size > 0
            self.conn = sqlite3.connect(f"{self.path.absolute().as_uri()}?{'mode=ro' if logged else 'immutable=1'}",
                                        uri=True, isolation_level=None, check_same_thread=False)
            self.conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # fails here, not at the first query
        columns = {row[1] for row in self.conn.execute("PRAGMA table_info(items)")}
        # an index written before a column was added is read as it was written (its rows lack nothing else)
        self._columns = "id, gallery_id, label, sha256, box, encoder, source, " + (
            "parts_only" if "parts_only" in columns else "0")
        self._cache: dict[int, Record] = {}  # by id, for one generation (ids are never reused)
        self._cache_generation = -1
        self._cache_lock = threading.Lock()

    def _upgrade(self) -> None:
        """Add the columns that an index written by an older version lacks (with their default values)."""
        columns = {row[1] for row in self.conn.execute("PRAGMA table_info(items)")}
        if "parts_only" not in columns:
            self.conn.execute("ALTER TABLE items ADD COLUMN parts_only INTEGER NOT NULL DEFAULT 0")

    def close(self) -> None:
        self.conn.close()

    @property
    def generation(self) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def _bump(self) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES ('generation', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (str(self.generation + 1),),
        )

    def count(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]

    def count_images(self) -> int:
        return self.conn.execute("SELECT COUNT(DISTINCT gallery_id) FROM items").fetchone()[0]

    def source_of(self, gallery_id: str) -> str | None:
        """The file a gallery image was indexed from ("" when unknown), None when it is not indexed."""
        row = self.conn.execute("SELECT source FROM items WHERE gallery_id = ? LIMIT 1", (gallery_id,)).fetchone()
        return None if row is None else row[0]

    def sha_of(self, gallery_id: str) -> str | None:
        row = self.conn.execute(
            "SELECT sha256 FROM items WHERE gallery_id = ? LIMIT 1", (gallery_id,)
        ).fetchone()
        return row[0] if row else None

    def write(self, add: Iterable[NewItem] = (), remove_gallery_ids: Iterable[str] = (),
              thumbs: Mapping[str, bytes] | None = None) -> tuple[list[int], list[int]]:
        """Remove then add in one transaction; ``thumbs``: PNG bytes by gallery id, stored with the items.

        Returns:
            (ids added, ids removed).
        """
        added, removed = [], []
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            for gid in remove_gallery_ids:
                ids = [r[0] for r in cur.execute("SELECT id FROM items WHERE gallery_id = ?", (gid,))]
                cur.execute("DELETE FROM items WHERE gallery_id = ?", (gid,))
                cur.execute("DELETE FROM thumbs WHERE gallery_id = ?", (gid,))
                removed.extend(ids)
            for item in add:
                vec = np.ascontiguousarray(item.vector, dtype=np.float32)
                cur.execute(
                    "INSERT INTO items (gallery_id, label, sha256, box, encoder, source, vector, parts_only) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (item.gallery_id, item.label, item.sha256, json.dumps(list(item.box)),
                     item.encoder, item.source, vec.tobytes(), 2 if item.small else int(item.parts_only)),
                )
                added.append(int(cur.lastrowid))
            _put_thumbs(cur, thumbs or {})
            self._bump()
            cur.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:  # not when the interrupt came after COMMIT returned
                cur.execute("ROLLBACK")
            raise
        return added, removed

    def drop_twice_stored(self) -> int:
        """Delete the rows that repeat an earlier row of the same image (same box, role and vector), in one
        transaction; returns how many went."""
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            cur.execute("DELETE FROM items WHERE id NOT IN (SELECT MIN(id) FROM items GROUP BY gallery_id, box, parts_only, vector)")
            dropped = cur.rowcount
            if dropped:
                self._bump()
            cur.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                cur.execute("ROLLBACK")
            raise
        return dropped

    @staticmethod
    def _record(row: tuple) -> Record:
        return Record(row[0], row[1], row[2], row[3], tuple(json.loads(row[4])), row[5], row[6], bool(row[7]), row[7] == 2)

    def records(self, ids: Iterable[int]) -> dict[int, Record]:
        """Records by id for the given ids (missing ids are left out); those read since the last write
        come from memory."""
        ids = set(ids)
        generation = self.generation
        with self._cache_lock:
            if generation != self._cache_generation or len(self._cache) > RECORD_CACHE:
                self._cache, self._cache_generation = {}, generation
            found = {i: r for i in ids if (r := self._cache.get(i)) is not None}
        missing = ids - found.keys()
        if missing:
            rows = self._where_in(f"SELECT {self._columns} FROM items WHERE id IN",
                                  missing)
            read = {row[0]: self._record(row) for row in rows}
            found.update(read)
            with self._cache_lock:
                if generation == self._cache_generation:  # not rows of a generation that has passed
                    self._cache.update(read)
        return found

    def _where_in(self, select: str, values: Iterable) -> list[tuple]:
        """The rows of ``select`` (ending ``... IN``) for ``values``, asked in chunks of
        :data:`SQL_VARIABLES` (a statement takes only so many)."""
        values = list(values)
        rows: list[tuple] = []
        for start in range(0, len(values), SQL_VARIABLES):
            chunk = values[start:start + SQL_VARIABLES]
            rows += self.conn.execute(f"{select} ({','.join('?' * len(chunk))})", chunk).fetchall()
        return rows

    def put_thumbs(self, thumbs: Mapping[str, bytes]) -> None:
        """Store thumbnails of images already indexed (one transaction; the vectors, and so the
        generation that tells searchers to catch up, do not change)."""
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            _put_thumbs(cur, thumbs)
            cur.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:  # not when the interrupt came after COMMIT returned
                cur.execute("ROLLBACK")
            raise

    def small_ids(self, gallery_ids: Iterable[str]) -> set[str]:
        """Those of ``gallery_ids`` that have a vector for small parts only (:attr:`Record.small`)."""
        return {row[0] for row in self._where_in("SELECT gallery_id FROM items WHERE parts_only = 2 AND gallery_id IN",
                                                 gallery_ids)}

    def thumb_ids(self) -> set[str]:
        """The gallery ids that have a thumbnail."""
        return {row[0] for row in self.conn.execute("SELECT gallery_id FROM thumbs")}

    def thumbs(self, gallery_ids: Iterable[str]) -> dict[str, bytes]:
        """PNG thumbnails by gallery id for those of ``gallery_ids`` that have one."""
        return dict(self._where_in("SELECT gallery_id, png FROM thumbs WHERE gallery_id IN", gallery_ids))

    def all_records(self) -> list[Record]:
        rows = self.conn.execute(f"SELECT {self._columns} FROM items ORDER BY id")
        return [self._record(row) for row in rows]

    def iter_vectors(self, dim: int, chunk: int = 10_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (ids (n,), vectors (n, dim) float32) chunks in id order."""
        last = -1
        while True:
            rows = self.conn.execute(
                "SELECT id, vector FROM items WHERE id > ? ORDER BY id LIMIT ?", (last, chunk)
            ).fetchall()
            if not rows:
                return
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
            yield ids, vecs
            last = int(ids[-1])


def _put_thumbs(cur: sqlite3.Cursor, thumbs: Mapping[str, bytes]) -> None:
    """Insert or replace thumbnails (PNG bytes by gallery id) inside the caller's transaction."""
    cur.executemany("INSERT OR REPLACE INTO thumbs (gallery_id, png) VALUES (?, ?)", list(thumbs.items()))
