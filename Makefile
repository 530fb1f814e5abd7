# On a fresh machine: `make demo`, `make test` and `make lab` (JupyterLab on notebooks/). Each creates ./.venv when missing.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.semcopy-installed
DEMO_DIR ?= .cache/demo
PORT   ?= 8866
HOST   ?= 127.0.0.1
LAB_PORT ?= 8888
# pytest workers in `make test` (pytest-xdist, one test file per worker at a time; each computes on one thread)
TEST_WORKERS ?= 2

.PHONY: setup test lint lab fuzz load demo demo-build head pasted-probe matte clean

# Re-install when the dependency list changes. torch/torchvision are pinned in pyproject.toml.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(VENV)/bin/ruff check semcopy_lib tests
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(VENV)/bin/ruff check semcopy_lib tests

# JupyterLab on notebooks/ (open the URL it prints, token included); its default kernel (python3) is this
# venv's Python, where semcopy is installed. As root (a container) Jupyter needs --allow-root.
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks --no-browser --ip=$(HOST) --port=$(LAB_PORT) \
	  $(if $(filter 0,$(shell id -u)),--allow-root)

# The property tests with fresh random examples, ten times as many as `make test` draws
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest tests/test_robustness.py tests/test_flat.py -k "random_bytes or corrupted or any_picture or bf16 or adversarial"

# 8 browser sessions searching while `index add` writes 200 images: .cache/load-report.json (minutes)
load: $(STAMP)
	$(PY) -m pytest -m slow -s tests/e2e/test_load.py

demo: $(STAMP)
	$(VENV)/bin/semcopy demo --dir $(DEMO_DIR) --host $(HOST) --port $(PORT)

demo-build: $(STAMP)
	$(VENV)/bin/semcopy demo --dir $(DEMO_DIR) --build-only

# Retrain the bundled head (needs `apt-get install openclipart-png`; about 5 min on 2 cores)
head: $(STAMP)
	$(PY) -c "from semcopy_lib.data.clipart import sample_clipart; sample_clipart('.cache/train', per_category=200, per_folder=12, seed=11)"
	$(VENV)/bin/semcopy train .cache/train --out semcopy_lib/weights/effnet-lite0-semcopy.pt --cache .cache/train-views.npz

# Retrain the pasted-subject probe (same clip-art sample as `head`; EXCLUDE=DIR leaves a benchmark gallery out)
pasted-probe: $(STAMP)
	$(PY) -c "from semcopy_lib.data.clipart import sample_clipart; sample_clipart('.cache/train', per_category=200, per_folder=12, seed=11)"
	$(PY) -m semcopy_lib.train.pasted_probe .cache/train --out semcopy_lib/weights/pasted-probe.pt $(if $(EXCLUDE),--exclude $(EXCLUDE))

# The subject matte (semcopy_lib/segment/matte.py): 16,000 pastes of the training classes, about 45 min on
# 2 cores. The benchmark gallery's clip arts (docs/benchmarks.md, "The benchmark gallery") are left out.
matte: $(STAMP)
	$(PY) -m semcopy_lib.train.matte /usr/share/openclipart/png --out semcopy_lib/weights/subject-matte.pt --exclude $(or $(EXCLUDE),.cache/bench/gallery)

clean:
	rm -rf $(VENV) .cache .pytest_cache
