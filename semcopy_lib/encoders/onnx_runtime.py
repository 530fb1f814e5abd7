"""A frozen network's inference forward in ONNX Runtime on the CPU: the same fp32 numbers, faster.

PyTorch's eager CPU kernels handle EfficientNet-Lite0's depthwise convolutions poorly; ONNX Runtime
runs them faster, with the same vectors to rounding (``semcopy bench speed`` measures both paths).
The network is exported when the encoder is first used frozen (once, in memory, no file), with
the batch and the image size dynamic; training and anything needing gradients stay in PyTorch.

``SEMCOPY_RUNTIME=torch`` turns it off; without the ``onnxruntime`` and ``onnx`` packages the encoder
runs in PyTorch. ``SEMCOPY_RUNTIME=openvino`` runs OpenVINO instead, in mixed bf16 on a CPU
with native bf16 (:mod:`semcopy_lib.encoders.openvino_runtime`). The default, ``auto``, is OpenVINO in
mixed bf16 where it is installed and the CPU has native bf16 (gallery and queries alike: that moves no
benchmark kind's first hits by more than issue 28's rule allows, docs/benchmarks.md), else ONNX Runtime;
``onnx`` keeps everything in exact fp32.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import warnings
from typing import Sequence

import torch

from semcopy_lib.encoders.base import EncoderUnavailable

#: Environment variable choosing the CPU runtime of frozen backbones: ``auto`` (default: ``openvino`` where
#: that runs bf16 natively, else ``onnx``), ``onnx`` (exact fp32), ``openvino`` (mixed bf16 on a CPU with
#: native bf16, see :mod:`semcopy_lib.encoders.openvino_runtime`) or ``torch``.
RUNTIME_ENV = "SEMCOPY_RUNTIME"
RUNTIMES = ("auto", "onnx", "openvino", "torch")


def wanted_runtime() -> str:
    """The runtime ``$SEMCOPY_RUNTIME`` asks for (``auto`` when unset).

    Raises:
        EncoderUnavailable: another value (one line naming the variable).
    """
    runtime = os.environ.get(RUNTIME_ENV, "auto").strip().lower() or "auto"
    if runtime not in RUNTIMES:
        raise EncoderUnavailable(f"{RUNTIME_ENV}={runtime!r}: use one of {', '.join(RUNTIMES)}")
    return runtime


def runtime_note() -> str:
    """One line: the CPU runtime asked for here, and what the others would give (``semcopy encoders``)."""
    from semcopy_lib.encoders.openvino_runtime import openvino_bf16

    runtime, native = wanted_runtime(), openvino_bf16()
    here = f" = {'openvino' if native else 'onnx'} here" if runtime == "auto" else ""
    bf16 = "this CPU has native bf16" if native else "no native bf16 here (or openvino not installed)"
    return (f"CPU runtime: {runtime}{here} (${RUNTIME_ENV}: auto, the default: openvino where it runs bf16 "
            f"natively, else onnx; onnx, exact fp32; openvino, mixed bf16: {bf16}; torch)")


def onnx_installed() -> bool:
    """Whether ``onnxruntime`` (to run) and ``onnx`` (torch's exporter writes with it) import."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


#: torch's ONNX exporter keeps global state: two exports at once (a server's background export beside
#: another encoder's) fail, so they take turns.
_EXPORTING = threading.Lock()


def silence_export_notes() -> None:
    """Silences, for the rest of the process, the notes torch's exporter prints (the tracer's on the
    padding arithmetic, constant folding): for exports in other threads, which :func:`onnx_export`
    cannot silence itself (``warnings.catch_warnings`` swaps the process's filters, not a thread's)."""
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)


def onnx_export(module: torch.nn.Module, example: torch.Tensor, outputs: Sequence[str] = ()) -> io.BytesIO:
    """``module`` (eval mode, one (B, C, H, W) input named ``pixels``) exported to ONNX in memory, its
    batch, height and width dynamic, as are those of the ``outputs`` it names (4-d, in order)."""
    buffer = io.BytesIO()
    dynamic = {"pixels": {0: "batch", 2: "height", 3: "width"}}
    dynamic.update({name: {0: "batch", 2: "h", 3: "w"} for name in outputs})
    # the exporter's notes silenced here in the main thread only; elsewhere see silence_export_notes
    main = threading.current_thread() is threading.main_thread()
    with _EXPORTING, (warnings.catch_warnings() if main else contextlib.nullcontext()), torch.no_grad():
        if main:
            warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), example.contiguous(), buffer, input_names=["pixels"],
                          output_names=list(outputs) or None, dynamic_axes=dynamic, opset_version=17, dynamo=False)
    buffer.seek(0)
    return buffer


class OnnxForward:
    """``module``'s forward, exported to ONNX and run by an ONNX Runtime CPU session.

    >>> run = OnnxForward(net, torch.zeros(1, 3, 224, 224), outputs=("fmap",))
    >>> fmap, = run(pixels)  # (B, C, H, W) torch tensors, any B and image size

    Args:
        module: an eval-mode module taking one (B, 3, H, W) tensor and returning a tensor or a tuple.
        example: an input to trace with; its batch, height and width are exported as dynamic.
        outputs: a name per output (in order).
        threads: intra-op threads (default: torch's).
    """

    def __init__(self, module: torch.nn.Module, example: torch.Tensor, outputs: Sequence[str],
                 threads: int | None = None):
        import onnxruntime as ort

        buffer = onnx_export(module, example, outputs)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
        self.outputs = tuple(outputs)

    def __call__(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) float CPU pixels -> the module's outputs as float32 CPU tensors."""
        array = pixels.detach().float().contiguous().numpy()
        return [torch.from_numpy(out) for out in self.session.run(list(self.outputs), {"pixels": array})]
