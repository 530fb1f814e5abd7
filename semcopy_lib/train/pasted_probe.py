"""Train the pasted-subject probe (:mod:`semcopy_lib.segment.pasted`) on synthetic pastes.

Each example is a clip art of the training folder pasted with its transparency at 20-75 % of the
shorter side, half of them saved as JPEG, on a background: a training photo (46 %; random crop and
flip; :data:`~semcopy_lib.train.run.TRAIN_BACKGROUNDS`, none of the benchmark's background photos), a
generated picture (30 %), a generated printed page (12 %) or the silhouette of another clip art (12 %:
a background that is a drawing itself, whose cells are not the subject). Its target is the share of
each 24 x 24 cell that the subject's alpha covers.

``python -m semcopy_lib.train.pasted_probe IMAGES_DIR --out semcopy_lib/weights/pasted-probe.pt
[--exclude BENCH_GALLERY]`` (``make pasted-probe``).
"""

from __future__ import annotations

import argparse
import io
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from semcopy_lib.data import ImageLoadError, compose, load_image, scan_folder
from semcopy_lib.encoders.effnet import block_outputs
from semcopy_lib.segment.pasted import PastedProbe, probe_features

#: Input side of the windows pass, which the probe reads.
SIZE = 384


def pasted_example(subject: Image.Image, background: Image.Image, rng: random.Random) -> tuple[Image.Image, np.ndarray]:
    """``subject`` (RGBA) pasted on ``background``; returns (picture, (H, W) alpha coverage in [0, 1])."""
    picture, (x, y, w, h) = compose.on_background(subject, background, rng, scale=(0.2, 0.75))
    alpha = np.zeros((picture.height, picture.width), np.float32)
    alpha[y : y + h, x : x + w] = np.asarray(subject.getchannel("A").resize((w, h), Image.BILINEAR), np.float32) / 255
    if rng.random() < 0.5:
        buf = io.BytesIO()
        picture.save(buf, "JPEG", quality=rng.randint(60, 95))
        picture = Image.open(buf).convert("RGB")
    return picture, alpha


def make_examples(encoder, images_dir: Path | str, photos: list[Image.Image], n: int, seed: int,
                  progress: bool = True, exclude: set[str] = frozenset()) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, 152, 24, 24), targets (N, 24, 24)) of ``n`` pastes, through ``encoder`` (effnet-lite0).

    ``exclude``: gallery ids (paths relative to ``images_dir``) not to paste, e.g. a benchmark's gallery.
    """
    rng = random.Random(seed)
    files = [f for f in scan_folder(images_dir) if f.gallery_id not in exclude]
    if not files:
        raise ValueError(f"{images_dir}: no images left to paste")
    feats, targets = [], []
    bar = tqdm(total=n, desc="pastes", unit="img", disable=not progress)
    try:
        with torch.inference_mode(), block_outputs(encoder.net) as outputs:
            while len(feats) < n:
                try:
                    subject = load_image(rng.choice(files).path, max_side=512, keep_alpha=True)
                except ImageLoadError:
                    continue
                if subject.mode != "RGBA":
                    continue
                size = (rng.randint(400, 800), rng.randint(300, 700))
                kind = rng.random()
                if kind < 0.3 or (not photos and kind >= 0.54):
                    background = compose.random_picture(rng, size)
                elif kind < 0.42:
                    background = compose.text_page(rng, size)
                elif kind < 0.54:
                    try:
                        shape = load_image(rng.choice(files).path, max_side=512, keep_alpha=True)
                    except ImageLoadError:
                        continue
                    background = compose.silhouette(shape, rng, size)
                else:
                    background = _random_crop(rng.choice(photos), rng)
                picture, alpha = pasted_example(subject, background, rng)
                encoder.net.forward_features(encoder.to_pixels(encoder.preprocess(picture, SIZE)[None]))
                f = probe_features(outputs)[0]
                feats.append(f.half())
                cells = Image.fromarray(alpha).resize((f.shape[2], f.shape[1]), Image.BOX)
                targets.append(torch.from_numpy(np.array(cells, np.float32)))  # a writable copy
                bar.update(1)
    finally:
        bar.close()
    return torch.stack(feats), torch.stack(targets)


def _random_crop(photo: Image.Image, rng: random.Random) -> Image.Image:
    w, h = photo.size
    cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    out = photo.crop((x, y, x + cw, y + ch))
    return out.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else out


def fit_probe(feats: torch.Tensor, targets: torch.Tensor, epochs: int = 40, seed: int = 0,
              progress: bool = True) -> tuple[PastedProbe, list[float]]:
    """Train a :class:`PastedProbe` with class-balanced binary cross-entropy on soft cell targets.

    Returns:
        (the probe in eval mode, loss per epoch).
    """
    torch.manual_seed(seed)
    x = feats.float()
    probe = PastedProbe(channels=x.shape[1])
    probe.mean.copy_(x.mean((0, 2, 3), keepdim=True))
    probe.std.copy_(x.std((0, 2, 3), keepdim=True) + 1e-3)
    positive = float((targets > 0.5).float().mean().clamp(1e-3, 1 - 1e-3))
    optimiser = torch.optim.Adam(probe.parameters(), lr=3e-3, weight_decay=1e-4)
    losses = []
    for _ in tqdm(range(epochs), desc="probe", unit="epoch", disable=not progress):
        total = 0.0
        for batch in torch.randperm(len(x)).split(64):
            y = targets[batch]
            weight = torch.where(y > 0.5, 0.5 / positive, 0.5 / (1 - positive))
            loss = (F.binary_cross_entropy_with_logits(probe.logits(x[batch]), y, reduction="none") * weight).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(batch)
        losses.append(total / len(x))
    return probe.eval(), losses



def main(argv: list[str] | None = None) -> int:
    from semcopy_lib.data.samples import sample_photo_files
    from semcopy_lib.encoders import create_encoder
    from semcopy_lib.train.run import TRAIN_BACKGROUNDS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images_dir", help="clip arts of the training classes (PNG with transparency)")
    parser.add_argument("--out", required=True)
    parser.add_argument("-n", type=int, default=3000, help="pastes (default 3000)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--exclude", action="append", default=[], metavar="DIR",
                        help="leave out images with the same relative path in DIR (a benchmark gallery)")
    args = parser.parse_args(argv)
    exclude = {f.gallery_id for folder in args.exclude for f in scan_folder(folder)}
    encoder = create_encoder("effnet-lite0").eval()
    photos = [load_image(p, max_side=800) for name, p in sample_photo_files().items() if name in TRAIN_BACKGROUNDS]
    feats, targets = make_examples(encoder, args.images_dir, photos, args.n, args.seed, exclude=exclude)
    probe, losses = fit_probe(feats, targets, args.epochs)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(probe.state_dict(), args.out)
    print(f"{args.out}: {len(feats)} pastes, final loss {losses[-1]:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
