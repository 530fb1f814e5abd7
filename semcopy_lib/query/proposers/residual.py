"""``residual`` (stage ``copy``): what the gallery picture that the whole query copies does not explain
(:func:`~semcopy_lib.segment.residual.residual_parts`): a drawing pasted on a gallery photo, a sticker."""

from __future__ import annotations

from semcopy_lib.query.propose import Proposal, QueryImage, register_proposer
from semcopy_lib.segment.residual import residual_parts


@register_proposer("residual", stage="copy", threaded=True)
def residual(query: QueryImage) -> list[Proposal]:
    """Each part, kind ``residual``, embedded as lifted off the picture onto white (the gallery's
    drawings are embedded on white)."""
    if query.copied is None:
        return []
    return [Proposal(box, "residual", pixels=lifted)
            for box, lifted in residual_parts(query.image, query.copied, query.config.residual)]
