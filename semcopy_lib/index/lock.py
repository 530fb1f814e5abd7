"""One writer per index directory: an advisory ``flock`` on ``INDEX_DIR/write.lock``.

The lock belongs to an open file, so the kernel drops it when its process dies (even by ``kill -9``):
a crash never leaves a stale lock behind. The file holds the holder's pid and command, so a refused
writer can say who has it.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from pathlib import Path

LOCK_FILE = "write.lock"


class IndexLocked(RuntimeError):
    """Another process is writing this index; ``str(err)`` is one line saying which."""


class WriteLock:
    """Re-entrant exclusive lock on one index directory for this process.

    Args:
        directory: the index directory.
        wait: seconds to wait for another writer to finish before :class:`IndexLocked` (0: fail at once).
    """

    def __init__(self, directory: Path, wait: float = 0.0):
        self.path = Path(directory) / LOCK_FILE
        self.wait = wait
        self._fh = None
        self._depth = 0

    @property
    def held(self) -> bool:
        return self._depth > 0

    def acquire(self, wait: float | None = None) -> None:
        if self._depth:
            self._depth += 1
            return
        wait = self.wait if wait is None else wait
        fh = open(self.path, "a+", encoding="utf-8")
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.seek(0)
                    holder = " ".join(fh.read().split()) or "another process"
                    fh.close()
                    raise IndexLocked(
                        f"{self.path.parent}: another process is writing this index ({holder}); "
                        "wait for it to finish, then run the command again"
                    ) from None
                time.sleep(0.1)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}: {' '.join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv))[:200]}\n")
        fh.flush()
        self._fh = fh
        self._depth = 1

    def release(self) -> None:
        if not self._depth:
            return
        self._depth -= 1
        if self._depth == 0 and self._fh is not None:
            self._fh.seek(0)
            self._fh.truncate()
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "WriteLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
