"""YOLO key objects: a random yolov8n model through the same loading code; offline behaviour."""

import logging
import time

import numpy as np
import pytest
import torch
from PIL import Image

from semcopy_lib import detect
from semcopy_lib.detect import Detection, Detector, load_detector, to_detections


@pytest.fixture(autouse=True)
def project_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMCOPY_CACHE", str(tmp_path / "cache"))


def test_to_detections_clips_sorts_and_names():
    xyxy = np.array([[-5.0, 10.2, 50.0, 60.0], [10, 10, 500, 20], [30, 30, 30, 40]])
    dets = to_detections(xyxy, np.array([0.4, 0.9, 0.8]), np.array([1, 0, 1]), {0: "Cat", 1: "Dog"}, (100, 80))
    assert dets == [Detection((10, 10, 90, 10), "Cat", pytest.approx(0.9)),
                    Detection((0, 10, 50, 50), "Dog", pytest.approx(0.4))]  # the empty box is dropped


def test_missing_weights_warn_once_and_return_none(caplog, monkeypatch):
    monkeypatch.delenv("SEMCOPY_YOLO_WEIGHTS", raising=False)
    detect._warned.clear()
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="semcopy_lib.detect"):
        assert load_detector() is None
        assert load_detector() is None
    assert time.monotonic() - start < 10
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "yolov8x-oiv7.pt" in warnings[0] and "SEMCOPY_YOLO_WEIGHTS" in warnings[0]


def test_random_yolov8n_detects_through_the_real_path():
    detector = load_detector("yolov8n.yaml", device="cpu")
    assert isinstance(detector, Detector)
    # raise the class biases of the random head so that it proposes boxes with high confidence
    head = detector.model.model.model[-1]
    with torch.no_grad():
        for branch in head.cv3:
            branch[-1].bias.fill_(8.0)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8))
    dets = detector.detect(image, confidence=0.5, max_objects=5)
    assert 1 <= len(dets) <= 5
    confs = [d.confidence for d in dets]
    assert confs == sorted(confs, reverse=True) and min(confs) >= 0.5
    for d in dets:
        x, y, w, h = d.box
        assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= 320 and y + h <= 240
        assert isinstance(d.label, str)


def test_loader_errors_survive_ultralytics_patching_pil(tmp_path):
    """ultralytics swaps PIL's Image.open for one that installs pi-heif on unknown files; ours must not care."""
    import ultralytics.utils.patches  # noqa: F401  (applies the patch)

    from semcopy_lib.data import ImageLoadError, load_image

    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"\x00\xfe garbage \xff" * 8)  # no known format, not text either
    with pytest.raises(ImageLoadError, match="notes.jpg: not an image file"):
        load_image(bad)
