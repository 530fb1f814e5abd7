"""The built-in sample gallery: photos that ship inside installed pip packages, plus seeded copies.

``build_sample_gallery(root)`` writes, once:

```
root/gallery/<subject>/photo.png        the original
root/gallery/<subject>/sketch.png       a pencil drawing of it      (some subjects)
root/gallery/<subject>/mirror.jpg       mirrored, recoloured         (some subjects)
root/queries/<subject>-crop.jpg         a 70-85 % crop, JPEG: try these in the dashboard
```
"""

from __future__ import annotations

import importlib.util
import os
import random
from pathlib import Path
from typing import Callable

from PIL import Image

from semcopy_lib.data import compose, synth
from semcopy_lib.data.loading import load_image


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)  # no import: ultralytics writes settings when imported
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def sample_photo_files() -> dict[str, Path]:
    """Subject name -> photo file, for the photos the installed packages ship."""
    found: dict[str, Path] = {}
    skimage = _package_dir("skimage")
    if skimage:
        for stem in ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "retina", "hubble_deep_field",
                     "camera", "coins", "moon", "horse", "page", "brick", "grass", "gravel", "ihc", "cell", "logo"):
            for ext in (".png", ".jpg"):
                if (skimage / "data" / f"{stem}{ext}").is_file():
                    found[stem.replace("_left", "")] = skimage / "data" / f"{stem}{ext}"
    sklearn = _package_dir("sklearn")
    if sklearn:
        for stem in ("china", "flower"):
            if (sklearn / "datasets" / "images" / f"{stem}.jpg").is_file():
                found[stem] = sklearn / "datasets" / "images" / f"{stem}.jpg"
    matplotlib = _package_dir("matplotlib")
    if matplotlib:
        sample = matplotlib / "mpl-data" / "sample_data"
        for stem, fname in (("grace_hopper", "grace_hopper.jpg"), ("present", "Minduka_Present_Blue_Pack.png")):
            if (sample / fname).is_file():
                found[stem] = sample / fname
    ultralytics = _package_dir("ultralytics")
    if ultralytics:
        for stem in ("bus", "zidane"):
            if (ultralytics / "assets" / f"{stem}.jpg").is_file():
                found[stem] = ultralytics / "assets" / f"{stem}.jpg"
    return dict(sorted(found.items()))


def _save(img: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    img.save(tmp, quality=85) if path.suffix == ".jpg" else img.save(tmp)
    os.replace(tmp, path)


def build_sample_gallery(root: os.PathLike | str, seed: int = 0, max_side: int = 640) -> Path:
    """Write the sample gallery and queries under ``root`` (skipped when already there); returns the gallery dir."""
    root = Path(root)
    gallery, queries = root / "gallery", root / "queries"
    done = root / ".complete"
    if done.is_file():
        return gallery
    rng = random.Random(seed)
    copies: list[tuple[str, Callable[[Image.Image], Image.Image]]] = [
        ("sketch.png", synth.pencil_sketch),
        ("mirror.jpg", lambda im: synth.colour_shift(synth.mirror(im), rng)),
    ]
    for i, (subject, path) in enumerate(sample_photo_files().items()):
        img = load_image(path)
        img.thumbnail((max_side, max_side), Image.LANCZOS)
        _save(img, gallery / subject / "photo.png")
        name, make = copies[i % len(copies)]
        _save(make(img), gallery / subject / name)
        _save(synth.crop_jpeg(img, rng), queries / f"{subject}-crop.jpg")
        _save(synth.line_art(img), queries / f"{subject}-lineart.png") if i % 3 == 0 else None
    # a web page showing one gallery photo, and a collage holding four: what the dashboard cuts into regions
    photos = {subject: load_image(path, max_side=max_side) for subject, path in sample_photo_files().items()}
    names = sorted(photos)
    page, _ = compose.page(photos[names[len(names) // 3]], rng, dark=False)
    _save(page, queries / f"webpage-{names[len(names) // 3]}.png")
    tiles = [photos[n] for n in rng.sample(names, 4)]
    collage, _ = compose.collage(tiles[0], tiles[1:], rng, rows=2, cols=2, gutter=10)
    _save(collage, queries / "collage-4.png")
    done.write_text("ok\n")
    return gallery
