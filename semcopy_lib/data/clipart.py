"""Debian's ``openclipart-png`` clip art, limited to the folders DATA.md allows for training and tuning.

All other top-level folders are reserved for an independent evaluation of generalisation: nothing
here reads them unless a caller names them explicitly.
"""

from __future__ import annotations

import os
import random
import shutil
from collections import Counter
from pathlib import Path

from semcopy_lib.data.folders import scan_folder, sha256_of

CLIPART_ROOT = Path("/usr/share/openclipart/png")
#: The only openclipart folders that may be used for training, tuning, tests, benchmark and demo.
ALLOWED_CATEGORIES = ("animals", "food", "plants", "people", "shapes", "signs_and_symbols")


def sample_clipart(
    out_dir: os.PathLike | str,
    per_category: int = 100,
    per_folder: int | None = None,
    categories: tuple[str, ...] = ALLOWED_CATEGORIES,
    root: os.PathLike | str = CLIPART_ROOT,
    seed: int = 0,
) -> Path:
    """Copy a seeded sample of ``per_category`` images of each category, keeping nested folders.

    ``per_folder`` caps the images taken from any one folder (openclipart's ``shapes/stars`` alone
    holds hundreds of near-identical generated stars).

    Raises:
        FileNotFoundError: openclipart-png is not installed (``apt-get install openclipart-png``).
    """
    root, out = Path(root), Path(out_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not found; apt-get install openclipart-png")
    rng = random.Random(seed)
    seen: set[str] = set()  # openclipart has the same drawing in several folders: keep one copy
    for category in categories:
        files = scan_folder(root / category)
        rng.shuffle(files)
        taken, per_dir = 0, Counter()
        for f in files:
            if taken == per_category:
                break
            if per_folder is not None and per_dir[f.label] >= per_folder:
                continue
            digest = sha256_of(f.path)
            if digest in seen:
                continue
            seen.add(digest)
            taken += 1
            per_dir[f.label] += 1
            dest = out / category / f.gallery_id
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f.path, dest)
    return out
