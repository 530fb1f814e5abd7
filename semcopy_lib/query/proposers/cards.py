"""``cards``: rectangular pictures pasted on a single picture at a slant (:func:`~semcopy_lib.segment.cards.find_cards`)."""

from __future__ import annotations

from semcopy_lib.query.propose import Proposal, QueryImage, register_proposer
from semcopy_lib.segment.cards import find_cards, upright


@register_proposer("cards", threaded=True)
def cards(query: QueryImage) -> list[Proposal]:
    """Each card's box, kind ``card``, searched turned back upright; none on a page or collage."""
    if not query.single:
        return []
    return [Proposal(card.box, "card", pixels=upright(query.image, card), upright=True) for card in find_cards(query.image, query.config.cards)]
