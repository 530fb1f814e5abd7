"""Where a search's time goes, stage by stage (``semcopy bench speed`` prints the split)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

#: The query pipeline's stages, in the order a query meets them: decoding the file, the encoder's passes
#: (the whole image, then the regions' crops), the vector searches, the region proposers (with the
#: feature-map pass they share), pixel checks, and the calibrated merge with the class vote.
STAGES = ("decode", "embed", "search", "propose", "verify", "rerank")


class StageClock:
    """Seconds spent per stage of :data:`STAGES`, summed over every search since :meth:`reset`."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)

    @contextmanager
    def time(self, stage: str) -> Iterator[None]:
        """Add the time spent inside the ``with`` block to ``stage``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start

    def reset(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
