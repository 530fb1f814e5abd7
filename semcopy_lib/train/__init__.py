"""Metric learning on top of a frozen encoder: semantic-copy views, a class-aware P x K sampler, a
residual projection head trained with :class:`~semcopy_lib.losses.CombinedLoss`."""

from semcopy_lib.encoders.headed import ResidualHead
from semcopy_lib.train.features import FeatureCache, PKSampler, build_feature_cache, split_classes
from semcopy_lib.train.views import VIEW_KINDS, semantic_copies

__all__ = ["FeatureCache", "PKSampler", "ResidualHead", "VIEW_KINDS", "build_feature_cache", "semantic_copies",
           "split_classes"]
