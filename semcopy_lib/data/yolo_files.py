"""Where YOLO weights are on this machine, and ultralytics imported so that it never reaches the network.

Shared by the detector (:mod:`semcopy_lib.detect`) and the YOLO encoder, which both load ultralytics models.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from semcopy_lib.data.folders import cache_dir

#: The Open Images V7 detector (600 classes), looked for by bare name in ultralytics' weights folder.
DEFAULT_WEIGHTS = "yolov8x-oiv7.pt"
WEIGHTS_ENV = "SEMCOPY_YOLO_WEIGHTS"


def offline_ultralytics():
    """Import ultralytics configured never to reach the network."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    # weights load with torch's weights_only unpickler and model configs without eval(), where this
    # ultralytics can (it reads the flag at import); set it to 0 for checkpoints of other classes
    os.environ.setdefault("ULTRALYTICS_SAFE_LOAD", "1")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(cache_dir() / "ultralytics"))
    Path(os.environ["YOLO_CONFIG_DIR"]).mkdir(parents=True, exist_ok=True)
    # its first import writes a settings file and says so on stdout, which is for machine output
    # (``search --json``); its logger, made here, keeps writing to stderr
    with contextlib.redirect_stdout(sys.stderr):
        import ultralytics

    ultralytics.settings.update({"sync": False})
    return ultralytics


def find_weights(weights: str | os.PathLike | None = None) -> Path | None:
    """The weights file to use, or None: ``weights`` as a path, ``$SEMCOPY_YOLO_WEIGHTS``, then
    ultralytics' weights folder (for a bare file name)."""
    name = weights or os.environ.get(WEIGHTS_ENV) or DEFAULT_WEIGHTS
    path = Path(name)
    if path.is_file():
        return path
    if path.suffix in (".yaml", ".yml") and path.parent == Path("."):
        return path  # a model config: ultralytics builds it with random weights (tests)
    if path.parent == Path("."):
        folder = Path(offline_ultralytics().settings["weights_dir"])
        if (folder / path.name).is_file():
            return folder / path.name
    return None
