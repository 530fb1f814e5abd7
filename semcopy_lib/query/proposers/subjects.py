"""``subjects``: drawn subjects of a single picture (:func:`~semcopy_lib.segment.subject_boxes`)."""

from __future__ import annotations

from semcopy_lib.query.propose import Proposal, QueryImage, register_proposer
from semcopy_lib.segment import subject_boxes


@register_proposer("subjects", threaded=True)
def subjects(query: QueryImage) -> list[Proposal]:
    """The boxes of the drawn subjects of a single picture, kind ``subject``; none on a page or collage."""
    return [Proposal(box, "subject") for box in subject_boxes(query.image, query.config.subjects)] if query.single else []
