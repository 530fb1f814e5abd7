"""Gallery folders: which files are images and what their gallery ids and classes are.

A gallery id is the POSIX path of the file relative to the gallery root (``animals/cat.png``); its
class is the parent folder (``animals``), or ``""`` for files at the root.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Iterator

from PIL import Image

from semcopy_lib.data.loading import ImageLoadError, is_image_path, load_image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GalleryFile:
    """One image file of a gallery: where it is, its id and its class."""

    path: Path
    gallery_id: str

    @property
    def label(self) -> str:
        """The class: the parent folder of the id (``""`` at the root)."""
        parent = PurePosixPath(self.gallery_id).parent.as_posix()
        return "" if parent == "." else parent


def gallery_id_for(path: os.PathLike | str, root: os.PathLike | str | None) -> str:
    """The gallery id of ``path``: relative to ``root`` when inside it, else ``parent/name``."""
    path = Path(path).resolve()
    if root is not None:
        try:
            return path.relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            pass
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def not_image_reason(path: os.PathLike | str) -> str:
    """Why a file without an image suffix is left out of a gallery, in one line."""
    suffix = Path(path).suffix.lower()
    if suffix in (".svg", ".svgz"):
        return "an SVG drawing, which semcopy does not render: convert it to PNG first"
    return f"not an image file name (suffix {suffix or 'none'!r})"


def scan_folder(root: os.PathLike | str, skipped: list[tuple[str, str]] | None = None) -> list[GalleryFile]:
    """All image files below ``root`` (recursively, hidden files and folders skipped), sorted by id.

    ``skipped``: when given, each other (non-hidden) file is appended to it as (path, reason).
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fname in filenames:
            path = Path(dirpath) / fname
            if fname.startswith("."):
                if skipped is not None and is_image_path(fname):
                    skipped.append((str(path), "hidden file (its name starts with '.'): not indexed"))
                continue
            if not is_image_path(fname):
                if skipped is not None:
                    skipped.append((str(path), not_image_reason(path)))
                continue
            if not path.exists():  # a link to a file that is gone: nothing to read
                if skipped is not None:
                    skipped.append((str(path), "a link to a missing file"))
                continue
            found.append(GalleryFile(path=path, gallery_id=path.relative_to(root).as_posix()))
    return sorted(found, key=lambda f: f.gallery_id)


class NoImages(ValueError):
    """A folder that a command draws its pictures from holds none it can use (one line naming it)."""


def scan_images(root: os.PathLike | str) -> list[GalleryFile]:
    """:func:`scan_folder` for a command that needs pictures (a benchmark drawing its queries).

    Raises:
        NotADirectoryError: ``root`` is not a folder.
        NoImages: it holds no image file.
    """
    files = scan_folder(root)
    if not files:
        raise NoImages(f"{root}: no image files found (a benchmark draws its pictures from them)")
    return files


def sha256_of(path: os.PathLike | str) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_files(files: Iterable[GalleryFile], skipped: list[tuple[str, str]] | None = None,
               **load: Any) -> Iterator[tuple[GalleryFile, Image.Image]]:
    """Each of ``files`` that decodes (:func:`~semcopy_lib.data.load_image` with ``load``), with its
    image. Each that does not is logged and appended to ``skipped`` as (path, reason): a training set
    or benchmark that loses files says how many."""
    for f in files:
        try:
            image = load_image(f.path, **load)
        except ImageLoadError as exc:
            log.warning("%s (skipped)", exc)
            if skipped is not None:
                skipped.append((str(f.path), exc.reason))
            continue
        yield f, image


def cache_dir() -> Path:
    """semcopy's cache folder (``$SEMCOPY_CACHE``, default ``~/.cache/semcopy``)."""
    return Path(os.environ.get("SEMCOPY_CACHE", Path.home() / ".cache" / "semcopy"))
