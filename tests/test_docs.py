"""The README stays a page for users, and every link of the docs leads somewhere."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_readme_is_short():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 300 and len(text.encode()) <= 25_000


def test_the_docs_pages_exist():
    names = {p.name for p in PAGES}
    assert {"architecture.md", "cli.md", "extending.md", "training.md", "benchmarks.md", "security.md",
            "scale.md"} <= names


def test_every_relative_link_and_picture_exists():
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if not re.match(r"[a-z]+://", target) and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken


def test_no_page_points_outside_the_repository():
    assert not [p.name for p in PAGES if "../shared" in p.read_text()]
