"""The query stage: region proposers, re-ranking, and the one typed config saved with each index."""

from semcopy_lib.query.config import (DEFAULT_PROPOSERS, MergeConfig, ObjectsConfig, PastedConfig, QueryConfig,
                                      TurnsConfig, VerifyConfig, VoteConfig, WindowsConfig)
from semcopy_lib.query.propose import (PROPOSERS, Proposal, ProposerInfo, QueryImage, check_proposers, propose,
                                       register_proposer, turned_views)
from semcopy_lib.query.merge import calibrated, explained, merge_hits
from semcopy_lib.query.rerank import voted

# Importing the modules registers the built-in proposers.
from semcopy_lib.query import proposers as _proposers  # noqa: F401,E402

__all__ = ["DEFAULT_PROPOSERS", "MergeConfig", "ObjectsConfig", "PROPOSERS", "PastedConfig", "Proposal",
           "ProposerInfo", "QueryConfig", "QueryImage", "TurnsConfig", "VerifyConfig", "VoteConfig", "WindowsConfig",
           "calibrated", "check_proposers", "explained", "merge_hits", "propose", "register_proposer", "turned_views", "voted"]
