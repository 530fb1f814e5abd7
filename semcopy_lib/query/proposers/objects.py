"""``objects``: the key-object detector's boxes, when a detector is loaded (:mod:`semcopy_lib.detect`)."""

from __future__ import annotations

from semcopy_lib.query.propose import Proposal, QueryImage, register_proposer


@register_proposer("objects")
def objects(query: QueryImage) -> list[Proposal]:
    """The detector's boxes (:meth:`QueryImage.detect`) that do not cover nearly the whole image
    (``config.objects.max_cover``), kind ``object``."""
    w, h = query.image.size
    cover = query.config.objects.max_cover
    return [Proposal(d.box, "object") for d in query.detect() if d.box[2] * d.box[3] < cover * w * h]
