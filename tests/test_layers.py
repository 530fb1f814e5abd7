"""Imports go one way (../shared/DESIGN.md): the bottom packages and the query stage never import
what is built on them."""

import ast
from pathlib import Path

import semcopy_lib

ROOT = Path(semcopy_lib.__file__).parent
BOTTOM = ("data", "segment", "index", "encoders", "losses", "detect")
ABOVE_QUERY = ("app", "train", "eval", "cli", "dashboard", "api")
#: Imports against the layering that are known and tracked (issue 27), each (importer, imported).
KNOWN = {("semcopy_lib.encoders.headed", "semcopy_lib.train.head")}


def _imports(package: str) -> set[tuple[str, str]]:
    """(module, imported semcopy_lib module) for every import in ``semcopy_lib/<package>``."""
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        module = "semcopy_lib." + ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            found |= {(module, n) for n in names if n.startswith("semcopy_lib.")}
    return found


def _top(name: str) -> str:
    return name.split(".")[1]


def test_the_bottom_packages_import_neither_the_query_stage_nor_what_uses_it():
    wrong = {(m, n) for p in BOTTOM for m, n in _imports(p) if _top(n) in ("query", *ABOVE_QUERY)} - KNOWN
    assert not wrong, sorted(wrong)


def test_the_query_stage_imports_only_what_lies_below_it():
    wrong = {(m, n) for m, n in _imports("query") if _top(n) in ABOVE_QUERY}
    assert not wrong, sorted(wrong)
    # it does use the bottom packages (the scan sees its imports)
    assert {"segment", "encoders", "detect"} <= {_top(n) for _, n in _imports("query")}
