"""Train the subject matte (:mod:`semcopy_lib.segment.matte`) on synthetic pastes.

Each example is a clip art of the training classes (animals, people, plants, signs_and_symbols: the
regions benchmark's tuning classes; its held-out classes are never pasted) pasted with its transparency
at 20-75 % of the shorter side on a background: a random crop of a training photo (60 %;
:data:`~semcopy_lib.train.run.TRAIN_BACKGROUNDS`, none of the benchmark's background photos), a generated
picture (25 %) or a generated printed page (15 %); turned up to 30° (40 %), with a drop shadow of 2-12
pixels (40 %), 70-100 % opaque (30 %), saved as JPEG (50 %). Its input is a box around the subject with
each side moved by up to 15 % of the box's size (a proposal's box is not the subject's), with the margin
the matte is given; its target, the subject's alpha there.

``python -m semcopy_lib.train.matte CLIPART_ROOT --out semcopy_lib/weights/subject-matte.pt
[--exclude BENCH_GALLERY]`` (``make matte``).
"""

from __future__ import annotations

import argparse
import io
import random
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from semcopy_lib.data import ImageLoadError, compose, load_image, scan_folder
from semcopy_lib.segment.lift import LiftConfig
from semcopy_lib.segment.matte import SubjectMatte, matte_input

#: The classes pasted: the regions benchmark's tuning classes.
TRAIN_CLASSES = ("animals", "people", "plants", "signs_and_symbols")
#: The margin around the box the matte sees: the one it is given in search.
MARGIN = LiftConfig().margin


def clipart_pool(root: Path | str, exclude: set[str] = frozenset()) -> list:
    """The images of :data:`TRAIN_CLASSES` under ``root`` whose file name is not in ``exclude`` (openclipart
    holds one drawing in several folders under one name: a benchmark gallery's are left out by name)."""
    folders = [Path(root) / c for c in TRAIN_CLASSES if (Path(root) / c).is_dir()]
    return [f for folder in folders for f in scan_folder(folder) if Path(f.path).name not in exclude]


def _background(rng: random.Random, photos: list[Image.Image]) -> Image.Image:
    r = rng.random()
    if r < 0.6:
        photo = rng.choice(photos)
        w, h = photo.size
        cw, ch = int(w * rng.uniform(0.5, 1)), int(h * rng.uniform(0.5, 1))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        out = photo.crop((x, y, x + cw, y + ch))
        return out.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else out
    size = (rng.randint(320, 640), rng.randint(240, 480))
    return compose.random_picture(rng, size) if r < 0.85 else compose.text_page(rng, size)


def example(rng: random.Random, files: list, photos: list[Image.Image]) -> tuple[np.ndarray, np.ndarray] | None:
    """(input (SIDE, SIDE, 4) uint8, target (SIDE, SIDE) uint8 alpha) of one paste, or None (a box too small)."""
    while True:
        try:
            subject = load_image(rng.choice(files).path, max_side=512, keep_alpha=True)
        except ImageLoadError:
            continue
        if subject.mode == "RGBA" and 0.05 <= (np.asarray(subject.getchannel("A")) > 128).mean() <= 0.97:
            break
    background = _background(rng, photos)
    turn = rng.uniform(-30, 30) if rng.random() < 0.4 else 0.0
    shadow = rng.randint(2, 12) if rng.random() < 0.4 else 0
    opacity = rng.uniform(0.7, 1.0) if rng.random() < 0.3 else 1.0
    state = rng.getstate()
    picture, (x, y, w, h) = compose.on_background(subject, background, rng, scale=(0.2, 0.75), turn=turn,
                                                  shadow=shadow, opacity=opacity, visible=True)
    # the same place and scale again (on_background draws only those), white where the subject is opaque
    again = random.Random()
    again.setstate(state)
    white = Image.new("RGBA", subject.size, (255, 255, 255, 0))
    white.putalpha(subject.getchannel("A"))
    alpha, _ = compose.on_background(white, Image.new("RGB", background.size, 0), again, scale=(0.2, 0.75),
                                     turn=turn, visible=True)
    if rng.random() < 0.5:
        buf = io.BytesIO()
        picture.save(buf, "JPEG", quality=rng.randint(50, 95))
        picture = Image.open(buf).convert("RGB")
    W, H = picture.size
    x0, y0 = max(0, int(x + rng.uniform(-0.15, 0.15) * w)), max(0, int(y + rng.uniform(-0.15, 0.15) * h))
    x1, y1 = min(W, int(x + w + rng.uniform(-0.15, 0.15) * w)), min(H, int(y + h + rng.uniform(-0.15, 0.15) * h))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    box = (x0, y0, x1 - x0, y1 - y0)
    target = matte_input(alpha.convert("RGB"), box, MARGIN)[..., 0]
    return matte_input(picture, box, MARGIN), target


def make_examples(root: Path | str, n: int, seed: int, exclude: set[str] = frozenset(),
                  progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(inputs (n, SIDE, SIDE, 4), targets (n, SIDE, SIDE)) uint8, drawn from ``random.Random(seed)``."""
    from semcopy_lib.data.samples import sample_photo_files
    from semcopy_lib.train.run import TRAIN_BACKGROUNDS

    rng = random.Random(seed)
    files = clipart_pool(root, exclude)
    if not files:
        raise ValueError(f"{root}: no clip art of {', '.join(TRAIN_CLASSES)}")
    photos = [load_image(p, max_side=800) for name, p in sample_photo_files().items() if name in TRAIN_BACKGROUNDS]
    inputs, targets = [], []
    with tqdm(total=n, desc=f"pastes (seed {seed})", unit="img", disable=not progress) as bar:
        while len(inputs) < n:
            found = example(rng, files, photos)
            if found is not None:
                inputs.append(found[0])
                targets.append(found[1])
                bar.update()
    return np.stack(inputs), np.stack(targets)


def fit_matte(inputs: np.ndarray, targets: np.ndarray, epochs: int = 15, seed: int = 0,
              progress: bool = True) -> tuple[SubjectMatte, list[float]]:
    """Train a :class:`SubjectMatte` with binary cross-entropy on the soft alpha plus a soft Dice loss
    (a small subject weighs as much as a large one); flips and swapped colour channels as augmentation.

    Returns:
        (the network in eval mode, loss per epoch).
    """
    torch.manual_seed(seed)
    x_all = torch.from_numpy(inputs).permute(0, 3, 1, 2).contiguous()
    y_all = torch.from_numpy(targets)
    net = SubjectMatte()
    optimiser = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, 3e-3, total_steps=epochs * ((len(x_all) + 63) // 64))
    losses = []
    for _ in tqdm(range(epochs), desc="matte", unit="epoch", disable=not progress):
        net.train()
        total = 0.0
        for batch in torch.randperm(len(x_all)).split(64):
            x, y = x_all[batch].float() / 255, y_all[batch].float() / 255
            if torch.rand(1) < 0.5:
                x, y = x.flip(-1), y.flip(-1)
            channels = torch.randperm(3) if torch.rand(1) < 0.3 else torch.arange(3)
            x = torch.cat([x[:, channels], x[:, 3:]], 1)
            logits = net(x)
            p = torch.sigmoid(logits)
            dice = 1 - (2 * (p * y).sum((1, 2)) + 1) / (p.sum((1, 2)) + y.sum((1, 2)) + 1)
            loss = F.binary_cross_entropy_with_logits(logits, y) + dice.mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(batch)
        losses.append(total / len(x_all))
    return net.eval(), losses


def _examples(args: tuple) -> tuple[np.ndarray, np.ndarray]:
    root, n, seed, exclude = args
    return make_examples(root, n, seed, exclude, progress=seed == 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="openclipart's png folder (holding animals/, people/, plants/, signs_and_symbols/)")
    parser.add_argument("--out", required=True)
    parser.add_argument("-n", type=int, default=8000, help="pastes per worker (default 8000)")
    parser.add_argument("--workers", type=int, default=2, help="processes making pastes, worker i seeded 1 + i")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--exclude", action="append", default=[], metavar="DIR",
                        help="leave out clip arts named as an image in DIR (a benchmark gallery)")
    args = parser.parse_args(argv)
    for folder in args.exclude:
        if not Path(folder).is_dir():
            parser.error(f"{folder}: no such folder to leave out")
    exclude = {p.name for folder in args.exclude for p in Path(folder).rglob("*") if p.is_file()}
    started = time.perf_counter()
    jobs = [(args.root, args.n, 1 + i, exclude) for i in range(args.workers)]
    with ProcessPoolExecutor(args.workers) as pool:
        made = list(pool.map(_examples, jobs))
    inputs, targets = np.concatenate([m[0] for m in made]), np.concatenate([m[1] for m in made])
    net, losses = fit_matte(inputs, targets, args.epochs)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), args.out)
    print(f"{args.out}: {len(inputs)} pastes, final loss {losses[-1]:.4f}, {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
