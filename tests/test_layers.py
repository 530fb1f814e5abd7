"""Imports go one way (docs/architecture.md): the import-linter contracts in pyproject.toml hold, and
they do fail on an upward import."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

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


def test_an_upward_import_breaks_the_layers(tmp_path):
    work = _copy(tmp_path)
    target = work / "semcopy_lib" / "segment" / "__init__.py"
    target.write_text(target.read_text() + "\nfrom semcopy_lib.app.results import QueryResult  # noqa\n")
    run = _lint(work)
    assert run.returncode == 1
    assert "semcopy layers" in run.stdout and "BROKEN" in run.stdout
    assert "semcopy_lib.segment -> semcopy_lib.app.results" in run.stdout


def test_the_dashboard_may_not_reach_past_app(tmp_path):
    work = _copy(tmp_path)
    target = work / "semcopy_lib" / "dashboard" / "map_view.py"
    target.write_text(target.read_text() + "\nfrom semcopy_lib.data import load_image  # noqa\n")
    run = _lint(work)
    assert run.returncode == 1
    assert "semcopy_lib.dashboard.map_view -> semcopy_lib.data" in run.stdout
