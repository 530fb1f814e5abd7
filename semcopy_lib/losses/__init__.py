"""Metric-learning losses on embeddings (not models): triplet, symmetric InfoNCE, and their weighted sum.

Layout after pytorch-metric-learning: a distance object is injected, so triplet and InfoNCE share one
cosine; losses take ``(embeddings, labels)`` or paired views and can return their named parts
(open_clip ``loss.py``) for per-part plots.
"""

from semcopy_lib.losses.combined import CombinedLoss
from semcopy_lib.losses.distances import CosineDistance, Distance, EuclideanDistance
from semcopy_lib.losses.infonce import InfoNCELoss
from semcopy_lib.losses.triplet import TripletLoss, mine_triplets

__all__ = ["CombinedLoss", "CosineDistance", "Distance", "EuclideanDistance", "InfoNCELoss", "TripletLoss",
           "mine_triplets"]
