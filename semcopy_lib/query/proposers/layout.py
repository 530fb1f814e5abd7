"""``layout``: the photos of a screenshot and the tiles of a collage (:func:`~semcopy_lib.segment.analyse`)."""

from __future__ import annotations

from semcopy_lib.query.propose import Proposal, QueryImage, register_proposer


@register_proposer("layout", threaded=True)
def layout_regions(query: QueryImage) -> list[Proposal]:
    """Each photo or tile box that is not the whole image, kind ``photo`` or ``tile``."""
    return [Proposal(r.box, r.kind) for r in query.layout.regions(query.image.size)[1:]]
