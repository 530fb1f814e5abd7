"""Imports go one way (docs/architecture.md): the import-linter contracts in pyproject.toml hold, and
they do fail on an upward import."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).parent / "lint-imports"


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(cwd))
    return subprocess.run([str(LINT), "--config", str(cwd / "pyproject.toml"), "--no-cache"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_import_contracts_hold():
    run = _lint(ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "2 kept, 0 broken" in run.stdout


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "semcopy_lib", tmp_path / "semcopy_lib", ignore=shutil.ignore_patterns("weights", "__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


@pytest.mark.parametrize("module, line, broken", [
    # a building block reaching up to the services
    ("segment/__init__.py", "from semcopy_lib.app.results import QueryResult", "semcopy_lib.segment -> semcopy_lib.app.results"),
    # a face reaching past app
    ("dashboard/map_view.py", "from semcopy_lib.data import load_image", "semcopy_lib.dashboard.map_view -> semcopy_lib.data"),
])
def test_a_wrong_import_breaks_a_contract(tmp_path, module, line, broken):
    work = _copy(tmp_path)
    target = work / "semcopy_lib" / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    run = _lint(work)
    assert run.returncode == 1 and "BROKEN" in run.stdout
    assert broken in run.stdout
