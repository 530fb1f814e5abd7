"""The built-in region proposers; importing this package registers them (one module each)."""

from semcopy_lib.query.proposers import cards, layout, objects, pasted, residual, rest, subjects, windows  # noqa: F401
