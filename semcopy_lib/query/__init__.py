"""The query stage's settings and re-ranking: one typed config, saved with each index."""

from semcopy_lib.query.config import MergeConfig, QueryConfig, VerifyConfig, VoteConfig
from semcopy_lib.query.rerank import voted

__all__ = ["MergeConfig", "QueryConfig", "VerifyConfig", "VoteConfig", "voted"]
