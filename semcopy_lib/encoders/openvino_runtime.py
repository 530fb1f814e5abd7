"""A frozen network's inference forward in OpenVINO on a CPU that runs bf16 natively: its first layers
in fp32, the rest in bf16.

bf16 throughout moves EfficientNet-Lite0's vectors too far from fp32's (under the cosine 0.999 asked):
the error comes from the stem and the first blocks, which see the raw pixels at full resolution. The
network is therefore cut in two graphs, the first compiled in fp32 and the rest in bf16 (OpenVINO's
CPU plugin applies one precision to a whole graph; where the cut is:
:data:`semcopy_lib.encoders.effnet.BF16_FROM`), which runs faster than ONNX Runtime's fp32.

Graphs are converted from PyTorch (through ONNX, in memory) when the encoder is first used frozen and compiled for
each input shape met (static shapes run faster than one dynamic graph). Used for every pass by default
where the CPU runs bf16 natively, and when ``SEMCOPY_RUNTIME=openvino``
(:mod:`semcopy_lib.encoders.onnx_runtime`).
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from semcopy_lib.encoders.onnx_runtime import onnx_export


def openvino_installed() -> bool:
    """Whether ``openvino`` imports."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=1)
def openvino_bf16() -> bool:
    """Whether ``openvino`` imports and its CPU plugin reports native bf16 (AMX or AVX-512 BF16)."""
    try:
        import openvino as ov

        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # not installed, or a plugin that cannot start: ONNX Runtime then
        return False


class MixedForward:
    """``rest(first(pixels))`` in OpenVINO: ``first`` in fp32, ``rest`` in bf16 (in fp32 too on a CPU
    without native bf16, where OpenVINO would only emulate it).

    >>> run = MixedForward(stem_and_early_blocks, later_blocks, torch.zeros(1, 3, 224, 224))
    >>> *early, *late = run(pixels)  # (B, 3, H, W) -> first's outputs, then rest's, torch tensors

    Args:
        first: an eval-mode module taking one (B, 3, H, W) tensor and returning a tensor or a tuple,
            whose first tensor is ``rest``'s input.
        rest: an eval-mode module taking that tensor and returning a tensor or a tuple.
        example: an input to trace both with (any batch and size: each shape met is compiled).
        threads: inference threads (default: torch's).
    """

    def __init__(self, first: torch.nn.Module, rest: torch.nn.Module, example: torch.Tensor,
                 threads: int | None = None):
        import openvino as ov

        with torch.no_grad():
            example = example.contiguous()
            # through an ONNX export: the same graphs as converting the modules themselves, faster
            self._first = ov.convert_model(onnx_export(first, example))
            hidden = first(example)
            self._rest = ov.convert_model(onnx_export(rest, hidden[0] if isinstance(hidden, tuple) else hidden))
        self._core = ov.Core()
        self._threads = str(threads or torch.get_num_threads())
        self._compiled: dict[tuple[int, ...], tuple[Any, Any]] = {}
        self._lock = threading.Lock()  # an infer request runs one call at a time

    def _requests(self, shape: tuple[int, ...]) -> tuple[Any, Any]:
        if shape not in self._compiled:
            first = self._first.clone()
            first.reshape(list(shape))
            early = self._core.compile_model(first, "CPU", self._config("f32"))
            rest = self._rest.clone()
            rest.reshape(list(early.outputs[0].get_shape()))
            late = self._core.compile_model(rest, "CPU", self._config("bf16" if openvino_bf16() else "f32"))
            self._compiled[shape] = (early.create_infer_request(), late.create_infer_request())
        return self._compiled[shape]

    def compile(self, shape: tuple[int, ...]) -> None:
        """Compiles both graphs for input ``shape`` (B, 3, H, W) now, unless done before."""
        with self._lock:
            self._requests(shape)

    def _config(self, precision: str) -> dict[str, str]:
        return {"INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": self._threads,
                "PERFORMANCE_HINT": "LATENCY"}

    def __call__(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) float CPU pixels -> ``first``'s outputs, then ``rest``'s, float32 tensors."""
        array = pixels.detach().float().contiguous().numpy()
        with self._lock:
            early, late = self._requests(tuple(array.shape))
            found = early.infer([array])
            outputs = [np.array(found[i]) for i in range(len(early.model_outputs))]  # copies: a request
            found = late.infer([outputs[0]])  # reuses its output buffers
            outputs += [np.array(found[i]) for i in range(len(late.model_outputs))]
        return [torch.from_numpy(out) for out in outputs]
