"""Shared fixtures: small generated galleries and a tiny random CLIP checkpoint."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

# `make test` runs two pytest workers on two cores (pytest-xdist): each worker, and what it starts, computes
# on one thread, before numpy or torch read these. Two workers with a pool of threads each would spin on
# each other's cores (a FAISS or OpenMP loop then runs several times slower than alone).
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[_var] = "1"

import numpy as np
import pytest
from hypothesis import settings
from PIL import Image

# Tests run the encoders in ONNX Runtime's exact fp32 whatever the CPU, so that a test sees the same numbers
# on every machine (the default, OpenVINO mixed bf16, runs only where the CPU has native bf16) and each
# encoder a test builds skips OpenVINO's conversion and per-shape compiles (the suite took 60 % longer);
# the tests of the runtimes and of the default's choice ask for them by name.
os.environ.setdefault("SEMCOPY_RUNTIME", "onnx")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
# `semcopy trust` and `index build --encoder-path` write a trust list: never the user's own in tests
# (one folder per pytest process, removed when it ends: each run left three behind in /tmp)
_TRUST_DIR = tempfile.mkdtemp(prefix="semcopy-trust-")
atexit.register(shutil.rmtree, _TRUST_DIR, ignore_errors=True)
os.environ["SEMCOPY_TRUST_FILE"] = str(Path(_TRUST_DIR) / "trusted-weights.json")

# Property tests draw the same examples on every run of `make test` (a red CI is never chance);
# `make fuzz` draws fresh ones, ten times as many (tests/test_robustness.py reads the profile). No
# deadline: a busy machine makes a first call slow, and speed is for `semcopy bench`, not tests.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True, deadline=None)
settings.register_profile("fuzz", derandomize=False, print_blob=True, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
#: Property tests draw ``max_examples=N * FUZZ``: ten times as many under `make fuzz`.
FUZZ = 10 if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz" else 1


def pattern_image(seed: int, size: tuple[int, int] = (96, 80)) -> Image.Image:
    """A distinct, textured RGB image per seed (random blocks at random scales)."""
    rng = np.random.default_rng(seed)
    w, h = size
    img = rng.integers(0, 255, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    big = Image.fromarray(img).resize((w, h), Image.NEAREST)
    return big


@pytest.fixture(scope="session")
def gallery_dir(tmp_path_factory) -> Path:
    """12 photos shipped by pip packages, shrunk to 256 px, in 3 class folders (one nested)."""
    from semcopy_lib.data import load_image
    from semcopy_lib.data.samples import sample_photo_files

    root = tmp_path_factory.mktemp("gallery")
    classes = ["animals", "food", "shapes/stars"]
    photos = list(sample_photo_files().values())[:12]
    assert len(photos) == 12
    for i, path in enumerate(photos):
        folder = root / classes[i % 3]
        folder.mkdir(parents=True, exist_ok=True)
        load_image(path, max_side=256).save(folder / f"img{i:02d}.png")
    return root


@pytest.fixture(scope="session")
def gallery_index(gallery_dir, tmp_path_factory) -> Path:
    """An index of ``gallery_dir`` with the default encoder, for tests that search it and leave it as it was."""
    from semcopy_lib.app import build_index

    index_dir = tmp_path_factory.mktemp("gallery-index") / "idx"
    build_index(gallery_dir, index_dir, progress=False)
    return index_dir


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    """A random CLIPModel with a 32-px vision tower, written by save_pretrained."""
    from semcopy_lib.encoders.random_models import tiny_clip

    return tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="session")
def tiny_blip_dir(tmp_path_factory) -> Path:
    """A random BLIP captioning model with a 48-px vision tower, written by save_pretrained."""
    from semcopy_lib.encoders.random_models import tiny_blip

    return tiny_blip(tmp_path_factory.mktemp("tiny_blip"))


def stop_group(proc) -> None:
    """Stop a process started with ``start_new_session=True`` and everything it started (its group):
    SIGTERM, then SIGKILL after 30 s."""
    import os
    import signal
    import subprocess

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
