"""``windows``: square windows of the encoder's last feature map of a single picture, pooled as the
encoder pools a whole image (regional vectors after R-MAC, Tolias et al. 2016): a subject that fills
part of a larger picture is pooled without its background."""

from __future__ import annotations

from semcopy_lib.encoders.base import Cells
from semcopy_lib.query.propose import Proposal, QueryImage, register_proposer
from semcopy_lib.segment import scale_box


def window_cells(height: int, width: int, sides: tuple[int, ...], stride: int) -> list[Cells]:
    """(row, col, rows, cols) of every ``side`` x ``side`` window of an (height, width) map, starting
    every ``stride`` cells, smaller sides first."""
    return [(i, j, side, side) for side in sides
            for i in range(0, height - side + 1, stride) for j in range(0, width - side + 1, stride)]


@register_proposer("windows")
def windows(query: QueryImage) -> list[Proposal]:
    """Windows of ``config.windows`` as kind ``window``, embedded already; none on a page or collage,
    or with an encoder that exposes no maps."""
    maps = query.maps() if query.single else None
    if maps is None:
        return []
    _, height, width = maps.last.shape
    config = query.config.windows
    cells = window_cells(height, width, config.cells, config.stride)
    vectors = query.encoder.pool_cells(maps, cells)
    sx, sy = query.image.width / width, query.image.height / height
    return [Proposal(scale_box((j, i, w, h), sx, sy), "window", vector) for (i, j, h, w), vector in zip(cells, vectors)]
