"""``semcopy bench encoders``: one row per registered encoder on the same gallery and queries.

Each encoder that can run here indexes the gallery and answers the crop benchmark (R@1 of JPEG crops)
and the copies benchmark (R@1 of line art, pencil sketches and subjects pasted on photos). Encoders
whose weights are not here run with small random checkpoints built from configs (CLIP, BLIP, YOLO),
marked ``random``: those numbers only show that the whole path works.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from semcopy_lib.encoders import EncoderUnavailable, create_encoder, encoder_names
from semcopy_lib.encoders.registry import encoder_info

#: Copy kinds reported per encoder (of :data:`semcopy_lib.train.views.VIEW_KINDS`).
REPORTED_KINDS = ("line_art", "pencil", "on_photo")


def _random_stand_in(name: str, tmp: Path) -> tuple[dict[str, Any], str] | None:
    """Build arguments for ``name`` with random small weights, and how to describe them; None if none."""
    from semcopy_lib.encoders.random_models import tiny_blip, tiny_clip

    if name == "clip-vit-b32":
        return {"path": str(tiny_clip(tmp / "clip"))}, "random (tiny CLIP config)"
    if name == "clip-blip-fusion":
        clip, blip = tiny_clip(tmp / "clip"), tiny_blip(tmp / "blip")
        return {"clip_path": str(clip), "blip_path": str(blip)}, "random (tiny CLIP and BLIP, untrained fusion)"
    if name == "yolo-oiv7":
        return {"path": "yolov8n.yaml"}, "random (yolov8n.yaml)"
    if name == "concat":
        return ({"parts": "effnet-lite0-semcopy,yolo-oiv7", "weights": "1,0.5", "paths": ",yolov8n.yaml"},
                "effnet-lite0-semcopy + random yolov8n (weights 1 : 0.5)")
    return None


def run_encoders_bench(images_dir: os.PathLike | str, n: int = 50, seed: int = 0, progress: bool = True) -> list[dict]:
    """Rows ``{"encoder", "weights", "dim", "crops_r1", "<kind>_r1"..., "class_map10", "seconds"}`` or
    ``{"encoder", "weights": "skipped: <why>"}`` for every registered encoder."""
    from semcopy_lib.app import SearchService, index_files
    from semcopy_lib.data import scan_images
    from semcopy_lib.index import GalleryIndex
    from semcopy_lib.eval.copies import run_copies_bench
    from semcopy_lib.eval.crops import make_crop_queries
    from semcopy_lib.metrics import recall_at_k

    files = scan_images(images_dir)
    rows = []
    for name in encoder_names():
        with tempfile.TemporaryDirectory() as tmp_dir:
            tmp = Path(tmp_dir)
            info = encoder_info(name)
            kwargs, weights = ({}, "real") if info.available else (None, "")
            if kwargs is None:
                stand_in = _random_stand_in(name, tmp)
                if stand_in is None:
                    rows.append({"encoder": name, "weights": f"skipped: {info.note}"})
                    continue
                kwargs, weights = stand_in
            start = time.perf_counter()
            try:
                encoder = create_encoder(name, **kwargs)
            except EncoderUnavailable as exc:
                rows.append({"encoder": name, "weights": f"skipped: {exc}"})
                continue
            index = GalleryIndex.create(tmp / "idx", encoder.config.to_dict(), encoder.dim, root=images_dir)
            index_files(index, files, encoder, progress=progress)
            index.close()
            service = SearchService(tmp / "idx", encoder=encoder)
            pairs = make_crop_queries(images_dir, tmp / "crops", n=n, seed=seed)
            results = service.search([q for q, _ in pairs], k=10, regions=False)
            crops_r1 = recall_at_k([[h.gallery_id for h in r.hits] for r in results], [g for _, g in pairs], 1)
            copies = run_copies_bench(service, images_dir, tmp / "copies", n=n, seed=seed,
                                      splits=("held-out",))["splits"]["held-out"]
            row = {"encoder": name, "weights": weights, "dim": encoder.dim, "crops_r1": round(crops_r1, 3)}
            row.update({f"{k}_r1": copies["kinds"][k]["r1"] for k in REPORTED_KINDS})
            row.update(class_map10=copies["class_map10"], seconds=round(time.perf_counter() - start, 1))
            rows.append(row)
    return rows
