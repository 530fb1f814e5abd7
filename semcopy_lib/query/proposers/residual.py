"""``residual`` (stage ``copy``): what a gallery picture that the query, or a photo or tile of it, copies
does not explain (:func:`~semcopy_lib.segment.residual.residual_parts`): a drawing pasted on a gallery
photo, a sticker."""

from __future__ import annotations

from semcopy_lib.data.loading import to_rgb
from semcopy_lib.query.propose import Proposal, QueryImage, register_proposer
from semcopy_lib.segment import crop
from semcopy_lib.segment.residual import residual_parts


@register_proposer("residual", stage="copy", threaded=True)
def residual(query: QueryImage) -> list[Proposal]:
    """Each part, kind ``residual``, embedded as lifted off the picture onto white and onto each grey of
    the encoder's ``index_backdrops``, as the gallery embeds drawings (on white, those with transparency
    on grey too: a drawing's own white, a flag's stripe, vanishes on white); compared with the picture's
    file where it was read."""
    found = []
    for (x, y, w, h), picture, detail in query.copied:
        part = query.image
        if (x, y, w, h) != (0, 0, *query.image.size):
            dx, dy = round(query.config.residual.inset * w), round(query.config.residual.inset * h)
            x, y, w, h = x + dx, y + dy, w - 2 * dx, h - 2 * dy
            part = crop(query.image, (x, y, w, h))
        backdrops = query.encoder.config.index_backdrops
        found += [Proposal((x + bx, y + by, bw, bh), "residual", pixels=to_rgb(lifted),
                           views=tuple(to_rgb(lifted, grey) for grey in backdrops))
                  for (bx, by, bw, bh), lifted in residual_parts(part, picture, query.config.residual, detail)]
    return found
