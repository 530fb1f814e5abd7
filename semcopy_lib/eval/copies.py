"""The copies benchmark: each gallery image shown as the semantic copies users bring, per kind.

For ``n`` gallery images (seeded) every kind of :data:`~semcopy_lib.train.views.VIEW_KINDS` but the
original is written as a query (line art, pencil sketch, cartoon, colour shift, the clip art pasted
on a photo patch, a small turn, crop + JPEG). Each must find its source: R@1, R@10, mAP@10, MRR and
µAP (DISC21) per kind, as :func:`~semcopy_lib.eval.queries.evaluate_queries` counts them. Class level: each chosen image itself ranks the *other* gallery images, the
relevant ones being its class (mAP@10, the image's own id left out before the class vote, as for a
drawing the gallery does not hold). ``out_dir/<split>/truth.tsv`` lists
each query file with the gallery id it copies. As in the regions benchmark, a tuning and a held-out
split differ in the classes copied and the photos subjects are pasted on.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from PIL import Image

from semcopy_lib.data import GalleryFile, NoImages, read_files, scan_images
from semcopy_lib.metrics import map_at_k
from semcopy_lib.eval.pictures import SamePictures
from semcopy_lib.eval.queries import EvalQuery, evaluate_queries
from semcopy_lib.eval.regions import SPLITS, background_photos, split_files
from semcopy_lib.query import voted
from semcopy_lib.train.views import VIEW_KINDS, semantic_copies


def make_copy_queries(files: list[GalleryFile], out: Path, split: str, n: int, seed: int,
                      photos: list[Image.Image], skipped: list[tuple[str, str]] | None = None,
                      ) -> tuple[list[EvalQuery], list[tuple[Path, str, str]]]:
    """Write every copy kind of ``n`` (seeded) gallery ``files`` of ``split``'s classes into ``out``
    (pasted on ``photos``), and ``truth.tsv`` (query file, gallery id); the chosen files that cannot be
    read are added to ``skipped`` (path, reason).

    Returns:
        The queries, and the (file, gallery id, class) of each image copied.
    """
    rng = random.Random(f"{seed}-{split}")
    mine = split_files(files, split)
    chosen = rng.sample(mine, min(n, len(mine)))
    out.mkdir(parents=True, exist_ok=True)
    queries: list[EvalQuery] = []
    originals: list[tuple[Path, str, str]] = []
    for i, (f, image) in enumerate(read_files(chosen, skipped, max_side=768, keep_alpha=True)):
        originals.append((f.path, f.gallery_id, f.label))
        for kind, view in zip(VIEW_KINDS[1:], semantic_copies(image, rng, photos)[1:]):
            path = out / f"{kind}-{i:04d}.png"
            view.save(path)
            queries.append(EvalQuery(path, frozenset([f.gallery_id]), kind))
    # which query copies which gallery image, for looking at failures afterwards
    (out / "truth.tsv").write_text("".join(f"{q.path.name}\t{next(iter(q.relevant))}\n" for q in queries))
    return queries, originals


def run_copies_bench(service, images_dir: os.PathLike | str, out_dir: os.PathLike | str, n: int = 100,
                     seed: int = 0, splits: tuple[str, ...] = SPLITS) -> dict:
    """Per split: per-kind R@1 / R@10 / mAP@10 / MRR / µAP (and R@1 of the whole image alone, ``r1_whole``;
    R@1 with a first hit of the same picture counting, ``r1_picture``: :class:`~semcopy_lib.eval.pictures.SamePictures`)
    and class-level mAP@10 over ``n`` gallery images
    of the split's classes, pasted on the split's background photos (:func:`~semcopy_lib.eval.regions.split_of`)."""
    every = scan_images(images_dir)
    by_class: dict[str, set[str]] = {}
    for f in every:
        by_class.setdefault(f.label, set()).add(f.gallery_id)
    report: dict = {"splits": {}}
    same = SamePictures(images_dir, {r.gallery_id: r.sha256 for r in service.index.records()})
    for split in splits:
        photos = background_photos(service, split)
        skipped: list[tuple[str, str]] = []
        queries, originals = make_copy_queries(every, Path(out_dir) / split, split, n, seed, photos, skipped)
        if not queries:
            raise NoImages(f"{images_dir}: none of its {len(every)} image files could be read")
        table = evaluate_queries(service, queries, same=same)["kinds"]
        whole = evaluate_queries(service, queries, regions=False)["kinds"]  # regions must add, not take away
        rows = {kind: {**table[kind], "r1_whole": whole[kind]["r1"]} for kind in VIEW_KINDS[1:] if kind in table}
        # as for a drawing the gallery does not hold: the image's own hit is left out before the class vote
        # (it would vote for its own class with a perfect score)
        own = service.search([p for p, _, _ in originals], k=11 + service.config.vote.depth, vote=False)
        copy = service.encoder.copy_score
        ranked = [[h.gallery_id for h in voted([h for h in r.hits if h.gallery_id != gid], copy, service.config.vote)][:10]
                  for r, (_, gid, _) in zip(own, originals)]
        relevant = [by_class[label] - {gid} for _, gid, label in originals]
        report["splits"][split] = {"kinds": rows, "class_map10": round(map_at_k(ranked, relevant, 10), 3),
                                   "images": len(originals), "skipped": len(skipped),
                                   "backgrounds": f"{len(photos)} photos"}
    return report
