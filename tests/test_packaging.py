"""Set-up files agree with each other: one dependency set for pip, conda/Binder and CI."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_pip_list_equals_pyproject_dependencies():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1
    assert sorted(pip_lists[0]) == sorted(_pyproject()["project"]["dependencies"])
    assert "python=3.11" in env["dependencies"]


def test_torch_pair_is_pinned():
    deps = _pyproject()["project"]["dependencies"]
    assert "torch==2.14.1" in deps and "torchvision==0.29.1" in deps


def test_postbuild_installs_the_project_and_builds_the_demo():
    text = (ROOT / "postBuild").read_text()
    assert "pip install --no-deps -e ." in text  # dependencies come from environment.yml only
    assert "semcopy demo" in text and "--build-only" in text


def test_ci_runs_make_test_and_make_targets_create_the_venv():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "-m venv $(VENV)" in makefile
    for target in ("test:", "demo:"):
        assert f"\n{target} $(STAMP)" in makefile


def test_console_script_is_declared():
    assert _pyproject()["project"]["scripts"]["semcopy"] == "semcopy_lib.cli:main"
