"""The crop benchmark: does a 70-85 % crop of a gallery image, recompressed as JPEG, find that image?"""

from __future__ import annotations

import os
import random
from pathlib import Path

from semcopy_lib.data import GalleryFile, NoImages, read_files, scan_images
from semcopy_lib.data.synth import crop_jpeg


def make_crop_queries(
    images_dir: os.PathLike | str, out_dir: os.PathLike | str, n: int = 200, seed: int = 0
) -> list[tuple[Path, str]]:
    """Write ``n`` crop queries of randomly chosen gallery images (seeded) to ``out_dir``.

    Returns:
        (query file, gallery id it was made from) pairs.
    """
    files: list[GalleryFile] = scan_images(images_dir)
    rng = random.Random(seed)
    chosen = rng.sample(files, min(n, len(files)))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i, (f, img) in enumerate(read_files(chosen, max_side=2048)):  # a user-sized picture, not a 16k-px poster
        query = out / f"q{i:05d}.jpg"
        crop_jpeg(img, rng).save(query, quality=95)  # crop_jpeg already recompressed at q 50-80
        pairs.append((query, f.gallery_id))
    if not pairs:
        raise NoImages(f"{images_dir}: none of the {len(chosen)} image files chosen could be read")
    return pairs
