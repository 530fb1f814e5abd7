"""``rest`` (stage ``matched``): the rest of a single picture in which a gallery picture was found pasted,
its largest strip beside that picture's box: a composite's photo, when the photo is a gallery picture
too (the drawing covers so much of it that the whole image does not find it)."""

from __future__ import annotations

from semcopy_lib.query.propose import Proposal, QueryImage, register_proposer


@register_proposer("rest", stage="matched")
def rest(query: QueryImage) -> list[Proposal]:
    """The largest of the strips left of, right of, above and below ``query.matched`` (the full height or
    width of the query), kind ``rest``, when it covers ``config.rest.min_share`` of the query."""
    if query.matched is None:
        return []
    (x, y, w, h), (width, height) = query.matched, query.image.size
    strips = [(0, 0, x, height), (x + w, 0, width - x - w, height), (0, 0, width, y), (0, y + h, width, height - y - h)]
    largest = max(strips, key=lambda b: max(0, b[2]) * max(0, b[3]))
    if max(0, largest[2]) * max(0, largest[3]) < query.config.rest.min_share * width * height:
        return []
    return [Proposal(largest, "rest")]
