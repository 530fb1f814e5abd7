"""What every encoder is: one preprocessing, a feature network, and one L2 normalisation point."""

from __future__ import annotations

import os
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, ContextManager, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from semcopy_lib.data.loading import to_rgb


#: A window of a feature map in cells: (row, col, rows, cols).
Cells = tuple[int, int, int, int]


@dataclass
class FeatureMaps:
    """One image's maps from one forward pass (:meth:`Encoder.feature_maps`).

    Attributes:
        last: (C, H, W) float32, the map that the encoder pools into its vectors.
        inner: (C_i, H_i, W_i) outputs of inner blocks, by block index (what a proposer trained on
            them reads).
        backbone: which network and weights made them (a proposer trained on one backbone's maps
            is only used on those).
    """

    last: torch.Tensor
    inner: dict[int, torch.Tensor]
    backbone: str


def bicubic(image: Image.Image, width: int, height: int) -> torch.Tensor:
    """``image`` resized to ``width`` x ``height`` with Pillow's bicubic filter: (3, height, width) uint8 RGB.

    A shrink runs in PyTorch's antialiased bicubic, the same filter as Pillow's (a = -0.5, widened by the
    scale) to within one level on a few pixels and several times faster; an enlargement, where the two
    differ more, in Pillow.
    """
    rgb = image.convert("RGB")
    if rgb.width >= width and rgb.height >= height:
        pixels = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None]
        return F.interpolate(pixels, size=(height, width), mode="bicubic", antialias=True)[0]
    return torch.from_numpy(np.array(rgb.resize((width, height), Image.BICUBIC))).permute(2, 0, 1)


class EncoderUnavailable(RuntimeError):
    """An encoder cannot be built here (weights missing, package absent); the message says how to fix it."""


def padded_size(n: int, batch_size: int) -> int:
    """The batch size that ``n`` images are padded to on a GPU: the next power of two, at most
    ``batch_size``. Each new batch size pays its kernels' first calls there; padded, a gallery's
    batches of varying size (its images with transparency get one more view) take a few shapes."""
    return max(n, min(1 << (n - 1).bit_length(), batch_size))


@dataclass
class EncoderConfig:
    """How an encoder is built and how it preprocesses; saved beside every index and checkpoint.

    Attributes:
        name: registry name (``effnet-lite0``, ``clip-vit-b32``...).
        image_size: side of the square network input, in pixels.
        mean, std: per-channel normalisation applied to RGB in [0, 1].
        resize: ``"squash"`` (whole image to a square, nothing cropped away) or ``"center-crop"``
            (shorter side to ``image_size``, then the central square).
        index_sizes: input sides at which *gallery* images are embedded, one vector per size
            (a search keeps each image's best view). A gallery image seen at a larger input
            matches crops of itself, whose content is zoomed in, while the ``image_size`` view
            keeps an exact copy at score 1. Empty means ``(image_size,)``. Queries are always
            embedded at ``image_size``.
        index_backdrops: grey levels on which a gallery image's transparent parts are also composited,
            one more ``image_size`` view each (a clip-art subject lifted onto another background
            is nearer its drawing on grey than on white). Opaque images get no such view.
        path: a local weights folder or file, when the encoder takes one.
        options: encoder-specific settings (e.g. a hub repo id).
    """

    name: str
    image_size: int = 224
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    resize: str = "squash"
    index_sizes: tuple[int, ...] = ()
    index_backdrops: tuple[int, ...] = ()
    path: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mean"], data["std"], data["index_sizes"] = list(self.mean), list(self.std), list(self.index_sizes)
        data["index_backdrops"] = list(self.index_backdrops)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EncoderConfig":
        data = dict(data)
        data["mean"], data["std"] = tuple(data["mean"]), tuple(data["std"])
        data["index_sizes"] = tuple(data.get("index_sizes", ()))
        data["index_backdrops"] = tuple(data.get("index_backdrops", ()))  # none in older manifests
        return cls(**data)


#: Environment variable choosing the precision of frozen inference (embedding, not training): ``fp32``,
#: ``fp16`` or ``bf16``. Unset: fp16 on CUDA (EfficientNet-Lite0's activations are bounded by ReLU6, and
#: fp16 keeps 3 more mantissa bits than bf16), fp32 on CPU (ONNX Runtime's fp32 is the fast path there; a
#: reduced precision runs in PyTorch's autocast instead, slower on a CPU without native fp16: for trying only).
PRECISION_ENV = "SEMCOPY_PRECISION"
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def inference_dtype(device: torch.device) -> torch.dtype | None:
    """The reduced precision in which frozen inference runs on ``device`` (None: float32), from
    ``$SEMCOPY_PRECISION`` or the device's default (:data:`PRECISION_ENV`).

    Raises:
        EncoderUnavailable: an unknown value (one line naming the variable).
    """
    value = os.environ.get(PRECISION_ENV, "").strip().lower()
    if not value:
        return torch.float16 if device.type == "cuda" else None
    if value not in PRECISIONS:
        raise EncoderUnavailable(f"{PRECISION_ENV}={value!r}: use one of {', '.join(PRECISIONS)}")
    return PRECISIONS[value]


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` when given, else CUDA when present, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Encoder(nn.Module):
    """Image -> L2-normalised vector.

    Subclasses implement :meth:`features` (B, 3, S, S) -> (B, D). Everything else is shared, so
    indexing, search and training preprocess and normalise the same way.
    """

    config: EncoderConfig
    dim: int
    #: Images per forward pass on CPU whatever ``batch_size`` says (0: no cap). Small convolutional
    #: nets run faster in small batches there: their activations stay in cache.
    cpu_batch: int = 0
    #: Memory layout of pixel batches (and conv weights): convolutional nets run faster channels-last
    #: on CPU. Applied by :meth:`to_pixels`.
    memory_format: torch.memory_format = torch.contiguous_format
    #: Cosine score from which a hit is a copy of the query (the same picture, cropped or recompressed);
    #: a search with regions skips them for a query whose whole image already matches this well.
    #: None: not measured for this encoder, regions are always searched.
    copy_score: float | None = None
    #: Cosine score from which a hit shows the same subject (a drawing, sketch or cartoon of it, the
    #: subject on another background): what 75 % of such copies of unseen classes reach. None: not measured.
    subject_score: float | None = None

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self._mean = torch.tensor(config.mean).view(3, 1, 1)
        self._std = torch.tensor(config.std).view(3, 1, 1)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def device(self) -> torch.device:
        param = next(self.parameters(), None)
        return param.device if param is not None else torch.device("cpu")

    def preprocess(self, img: Image.Image, size: int | None = None) -> torch.Tensor:
        """RGB PIL image -> (3, S, S) float tensor, normalised; the only preprocessing of this encoder.

        ``size`` defaults to ``config.image_size``; gallery vectors also use ``config.index_sizes``.
        """
        size = size or self.config.image_size
        if self.config.resize == "center-crop":
            w, h = img.size
            scale = size / min(w, h)
            pixels = bicubic(img, max(size, round(w * scale)), max(size, round(h * scale)))
            h, w = pixels.shape[1:]
            left, top = (w - size) // 2, (h - size) // 2
            pixels = pixels[:, top : top + size, left : left + size]
        else:
            pixels = bicubic(img, size, size)
        return (pixels.float() / 255.0 - self._mean) / self._std

    def precision(self) -> str:
        """``fp32``, ``fp16`` or ``bf16``: what frozen inference runs in here (:func:`inference_dtype`)."""
        dtype = inference_dtype(self.device)
        return next(name for name, d in PRECISIONS.items() if d == dtype)

    def autocast(self) -> ContextManager[Any]:
        """Where frozen inference runs: :func:`torch.autocast` to :func:`inference_dtype` on this encoder's
        device (matrix products and convolutions in it, reductions and normalisation in float32), or
        nothing for float32. Training never enters it."""
        dtype = inference_dtype(self.device)
        if dtype is None or self.training:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def to_pixels(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) preprocessed pixels on this encoder's device, in its :attr:`memory_format`."""
        return batch.to(self.device).contiguous(memory_format=self.memory_format)

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) preprocessed pixels -> (B, D) raw (unnormalised) features."""
        raise NotImplementedError

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) preprocessed pixels -> (B, D) L2-normalised embeddings (trainable path)."""
        return F.normalize(self.features(pixels).float(), dim=-1)

    @torch.inference_mode()
    def embed(
        self,
        images: Sequence[Image.Image],
        batch_size: int = 32,
        progress: bool = False,
        size: int | None = None,
    ) -> np.ndarray:
        """Embed RGB images in batches (queries; see :meth:`embed_gallery` for gallery images).

        Args:
            size: input side (default ``config.image_size``).

        Returns:
            (N, D) float32, L2-normalised rows, in input order.
        """
        return self._embed_batches(images, lambda im: self.preprocess(im, size), batch_size, progress)

    def _embed_batches(self, items: Sequence[Any], prepare: Callable[[Any], torch.Tensor], batch_size: int,
                       progress: bool) -> np.ndarray:
        """(N, D) unit rows of ``items``, each made a (3, S, S) tensor by ``prepare`` a batch at a time."""
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        if self.cpu_batch and self.device.type == "cpu":
            batch_size = min(batch_size, self.cpu_batch)
        steps = range(0, len(items), batch_size)
        with self.evaluating():
            for start in tqdm(steps, desc=f"embed {self.name}", unit="batch", disable=not progress):
                batch = torch.stack([prepare(x) for x in items[start : start + batch_size]])
                n = len(batch)
                if self.device.type != "cpu":  # a few batch shapes, each loading its GPU kernels once
                    batch = torch.cat([batch, batch.new_zeros((padded_size(n, batch_size) - n, *batch.shape[1:]))])
                with self.autocast():
                    vectors = self(self.to_pixels(batch))[:n]
                out[start : start + n] = vectors.float().cpu().numpy()
        return out

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """Eval mode inside, the previous mode after; free when already in eval mode (setting it walks
        every module, a cost paid on each query otherwise)."""
        was_training = self.training
        if was_training:
            self.eval()
        try:
            yield
        finally:
            if was_training:
                self.train()

    def use_runtime(self, runtime: str) -> str:
        """Run frozen CPU inference in ``runtime`` (``auto``, ``onnx``, ``openvino`` or ``torch``, see
        :mod:`semcopy_lib.encoders.onnx_runtime`) where this encoder can; returns the runtime in use."""
        return "torch"

    def prepare(self, shapes: Sequence[tuple[int, int]] = ()) -> None:
        """Starts, in the background, any one-off work the first frozen passes would wait for (the API and
        the dashboard's search service call it when they start: a one-off search would only wait for it
        in another thread); nothing by default. ``shapes``: the (batch, side) inputs to have ready where
        the runtime compiles each input shape."""

    def feature_maps(self, image: Image.Image, size: int) -> FeatureMaps | None:
        """One forward pass of ``image`` resized to ``size`` px: its last feature map and inner maps,
        or None when this encoder exposes none (proposers that need maps then propose nothing)."""
        return None

    def pool_cells(self, maps: FeatureMaps, cells: Sequence[Cells]) -> np.ndarray:
        """(R, D) float32 unit vectors, in this encoder's space, of the windows ``cells`` (row, col,
        rows, cols) of ``maps.last``, pooled as :meth:`features` pools the whole map."""
        raise NotImplementedError(f"{self.name} exposes no feature maps")

    def gallery_pixels(self, image: Image.Image) -> list[torch.Tensor] | None:
        """``image`` (RGB, or RGBA with its transparency) preprocessed for each gallery view: on white
        at each of ``config.index_sizes``, then on each of ``config.index_backdrops`` at ``image_size``.
        :func:`~semcopy_lib.app.index_files` does this in its decoding threads, beside inference.

        Returns:
            One (3, S, S) tensor per view, or None when this encoder embeds gallery images its own way.
        """
        on_white = to_rgb(image)
        views = [self.preprocess(on_white, s) for s in self.config.index_sizes or (self.config.image_size,)]
        if "A" not in image.getbands() or image.getchannel("A").getextrema()[0] == 255:
            return views  # opaque: a backdrop would change nothing (and give a second, identical vector)
        return views + [self.preprocess(to_rgb(image, grey)) for grey in self.config.index_backdrops]

    @torch.inference_mode()
    def embed_gallery(self, images: Sequence[Image.Image], batch_size: int = 32,
                      pixels: Sequence[list[torch.Tensor]] | None = None) -> list[np.ndarray]:
        """Embed gallery images once per view of :meth:`gallery_pixels`.

        Args:
            images: RGB images, or RGBA with their transparency (for ``config.index_backdrops``).
            pixels: each image's :meth:`gallery_pixels`, when already computed (then ``images`` is not read).

        Returns:
            One (V, D) float32 array of unit vectors per image, its views in :meth:`gallery_pixels` order
            (V differs when only some images have transparency).
        """
        if pixels is None:
            pixels = [self.gallery_pixels(im) for im in images]
        out = [np.zeros((len(p), self.dim), dtype=np.float32) for p in pixels]
        for view in range(max(map(len, pixels), default=0)):  # the images' views of one size together
            having = [i for i, p in enumerate(pixels) if len(p) > view]
            vectors = self._embed_batches([pixels[i][view] for i in having], lambda x: x, batch_size, False)
            for i, vector in zip(having, vectors):
                out[i][view] = vector
        return out
