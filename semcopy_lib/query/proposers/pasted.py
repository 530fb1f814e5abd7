"""``pasted``: a subject pasted on a picture, found by the probe on the encoder's inner maps
(:mod:`semcopy_lib.segment.pasted`), from the same pass as the ``windows``."""

from __future__ import annotations

from functools import lru_cache

import torch

from semcopy_lib.query.propose import Proposal, QueryImage, register_proposer
from semcopy_lib.segment.pasted import BACKBONE, PROBE_BLOCKS, PastedProbe, cascade_boxes, load_probe, probe_features


@lru_cache(maxsize=1)
def _probe() -> PastedProbe | None:
    return load_probe()


@register_proposer("pasted")
def pasted(query: QueryImage) -> list[Proposal]:
    """The heaviest pasted part's box at each of ``config.pasted.thresholds``, kind ``subject``; none
    on a page or collage, or when the encoder's maps are not those the probe was trained on."""
    if not query.single:
        return []
    maps = query.maps()
    probe = _probe()
    if probe is None or maps is None or maps.backbone != BACKBONE or not set(PROBE_BLOCKS) <= set(maps.inner):
        return []
    with torch.inference_mode():
        prob = probe(probe_features(maps.inner).to(probe.mean.device))[0].cpu().numpy()
    config = query.config.pasted
    return [Proposal(box, "subject") for box in cascade_boxes(prob, query.image.size, config.thresholds, config.alike)]
