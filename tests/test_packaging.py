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
    for target in ("test:", "demo:", "lab:"):
        assert f"\n{target} $(STAMP)" in makefile


def test_make_test_runs_ruff_first_with_the_projects_config():
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\ntest: $(STAMP)\n", 1)[1].split("\n\n", 1)[0]
    assert recipe.index("ruff check semcopy_lib tests") < recipe.index("-m pytest")
    assert _pyproject()["tool"]["ruff"]["lint"]["select"] == ["E9", "F"]
    assert any(d.startswith("ruff") for d in _pyproject()["project"]["optional-dependencies"]["dev"])


def test_imported_third_party_packages_are_declared():
    """cv2 and scipy came only through ultralytics and scikit-image; jupyterlab is `make lab`'s."""
    deps = " ".join(_pyproject()["project"]["dependencies"])
    for name in ("opencv-python", "scipy", "jupyterlab", "ipykernel"):
        assert f'{name}>' in deps or f'{name}=' in deps, name
    assert "opencv-python-headless" not in deps  # a second copy of cv2 beside ultralytics' opencv-python


def test_the_version_is_written_once():
    project = _pyproject()["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert _pyproject()["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "semcopy_lib.__version__"}


def test_console_script_is_declared():
    assert _pyproject()["project"]["scripts"]["semcopy"] == "semcopy_lib.cli:main"


def test_the_dashboard_notebook_is_package_data_with_one_source():
    """`semcopy serve` opens semcopy_lib/dashboard/search.ipynb (in the wheel); in the checkout it is a
    symlink to dashboards/search.ipynb, the file Binder's Voila opens, so there is one notebook to edit."""
    from semcopy_lib.dashboard.serve import NOTEBOOK

    assert NOTEBOOK == ROOT / "semcopy_lib" / "dashboard" / "search.ipynb"
    assert NOTEBOOK.is_symlink() and NOTEBOOK.resolve() == (ROOT / "dashboards" / "search.ipynb").resolve()
    assert "dashboard/*.ipynb" in _pyproject()["tool"]["setuptools"]["package-data"]["semcopy_lib"]
