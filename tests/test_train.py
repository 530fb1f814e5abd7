"""Training pieces: the head, the sampler, the class split, a fit on synthetic features, checkpoints."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from semcopy_lib.train import FeatureCache, PKSampler, ResidualHead, split_classes
from semcopy_lib.train.fit import TrainConfig, evaluate, fit
from semcopy_lib.train.views import VIEW_KINDS


def test_untrained_head_is_the_identity_on_unit_vectors():
    x = torch.randn(5, 8)
    assert torch.allclose(ResidualHead(8, 4)(x), F.normalize(x, dim=-1), atol=1e-6)


def test_pk_sampler_gives_p_classes_of_k():
    labels = ["a"] * 5 + ["b"] * 2 + ["c"] * 1 + ["d"] * 8
    sampler = PKSampler(labels, p=3, k=2, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 16 // 6
    for batch in batches:
        classes = [labels[i] for i in batch]
        assert len(batch) == 6 and len(set(classes)) == 3 and all(classes.count(c) == 2 for c in set(classes))


def test_split_is_by_class_stable_and_disjoint():
    labels = [f"class{i}" for i in range(40)] * 3
    train, val = split_classes(labels, 0.25)
    assert train.isdisjoint(val) and train | val == set(labels) and 4 <= len(val) <= 18
    assert split_classes(labels[:60], 0.25)[1] == {c for c in val if c in set(labels[:60])}  # per-class decision


def synthetic_cache(n_classes: int, per_class: int, seed: int) -> FeatureCache:
    """Originals near their class centre; every other view is its original pushed along a direction of
    its own kind (as every line art shares "line-art-ness"), strongly enough that plain cosine matches
    views of one kind with each other rather than with their originals."""
    rng = np.random.default_rng(seed)
    dim = 32
    centres = rng.normal(size=(n_classes, dim))
    style = np.random.default_rng(99).normal(size=(len(VIEW_KINDS), dim)) * 4.0  # shared by train and validation
    feats, labels = [], []
    for c in range(n_classes):
        for _ in range(per_class):
            original = centres[c] + 0.6 * rng.normal(size=dim)
            views = [original] + [original + style[v] + 0.3 * rng.normal(size=dim) for v in range(1, len(VIEW_KINDS))]
            feats.append(np.stack(views))
            labels.append(f"c{seed}-{c}")
    features = np.asarray(feats, dtype=np.float32)
    features /= np.linalg.norm(features, axis=-1, keepdims=True)
    return FeatureCache(features, labels, [str(i) for i in range(len(labels))], "synthetic")


def test_fit_learns_what_the_views_share_and_generalises_to_unseen_classes():
    train, val = synthetic_cache(12, 6, seed=0), synthetic_cache(6, 6, seed=1)
    before = evaluate(val)
    rows = []
    head, history = fit(train, TrainConfig(epochs=15, p=6, k=3, lr=3e-3), val, progress=False, on_epoch=rows.append)
    after = evaluate(val, head)
    assert rows == history and len(history) == 15 and {"triplet", "infonce", "loss"} <= set(history[0])
    assert history[-1]["loss"] < history[0]["loss"]
    mean = lambda m: np.mean([v for k, v in m.items() if k.startswith("r1_")])  # noqa: E731
    assert mean(before) < 0.3 and mean(after) >= mean(before) + 0.15


def test_head_checkpoint_loads_through_create_encoder(tmp_path):
    from semcopy_lib.encoders import EncoderUnavailable, create_encoder
    from semcopy_lib.encoders.headed import save_head

    path = save_head(tmp_path / "head.pt", ResidualHead(1280, 16), "effnet-lite0", {"epochs": 0}, {}, copy_score=0.77)
    headed = create_encoder("effnet-lite0-semcopy", path=str(path))
    plain = create_encoder("effnet-lite0")
    img = Image.effect_mandelbrot((96, 80), (-2, -1.2, 1, 1.2), 40).convert("RGB")
    assert headed.copy_score == 0.77 and headed.dim == 1280 and headed.config.index_sizes == plain.config.index_sizes
    np.testing.assert_allclose(headed.embed([img]), plain.embed([img]), atol=2e-3)  # an untrained head changes nothing
    maps = headed.feature_maps(img, 384)
    cells = [(0, 0, 5, 5), (2, 4, 7, 7)]
    np.testing.assert_allclose(headed.pool_cells(maps, cells), plain.pool_cells(maps, cells), atol=2e-3)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(EncoderUnavailable, match="bad.pt: not a semcopy head checkpoint"):
        create_encoder("effnet-lite0-semcopy", path=str(tmp_path / "bad.pt"))


def test_bundled_head_beat_the_backbone_on_held_out_classes():
    """The shipped head's own record: on classes it never saw, no copy kind got worse and line art got better."""
    from semcopy_lib.encoders.headed import BUNDLED, load_checkpoint

    ckpt = load_checkpoint(BUNDLED)
    before, after = ckpt["metrics"]["before"], ckpt["metrics"]["after"]
    assert set(before) == set(after) and len(after) == len(VIEW_KINDS)  # every copy kind + class mAP
    assert all(after[k] >= before[k] - 0.005 for k in before), (before, after)
    assert after["r1_line_art"] >= before["r1_line_art"] + 0.2
    assert ckpt["train"]["epochs"] > 0 and 0 < ckpt["copy_score"] < 1


def test_a_head_trains_on_a_clip_backbone_and_serves_an_index(gallery_dir, tiny_clip_dir, tmp_path, capsys):
    """The same training code on CLIP (a tiny random one, loaded like a real checkpoint folder)."""
    from semcopy_lib.cli import main
    from semcopy_lib.encoders import EncoderUnavailable, create_encoder
    from semcopy_lib.train.run import train_head

    config = TrainConfig(encoder="clip-vit-b32", encoder_path=str(tiny_clip_dir), epochs=2, p=2, k=2, hidden=8,
                         val_fraction=0.34)
    report = train_head(gallery_dir, tmp_path / "clip-head.pt", config, photos=[], progress=False)
    assert report["train_classes"] >= 2 and len(report["history"]) == 2
    head = create_encoder("semcopy-head", path=str(tmp_path / "clip-head.pt"))
    clip = create_encoder("clip-vit-b32", path=str(tiny_clip_dir))
    assert head.name == "semcopy-head" and head.base.name == "clip-vit-b32" and head.dim == clip.dim == 16
    assert head.config.image_size == clip.config.image_size == 32  # the backbone's preprocessing
    img = Image.effect_mandelbrot((96, 80), (-2, -1.2, 1, 1.2), 40).convert("RGB")
    vec = head.embed([img])
    np.testing.assert_allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-5)
    with pytest.raises(EncoderUnavailable, match="--encoder-path"):
        create_encoder("semcopy-head")
    index = tmp_path / "idx"
    assert main(["index", "build", str(gallery_dir), "--index", str(index), "--encoder", "semcopy-head",
                 "--encoder-path", str(tmp_path / "clip-head.pt")]) == 0
    query = next(gallery_dir.rglob("*.png"))
    capsys.readouterr()
    assert main(["search", "--index", str(index), "--json", "-k", "1", str(query)]) == 0
    [line] = capsys.readouterr().out.strip().splitlines()
    assert json.loads(line)["hits"][0]["id"] == query.relative_to(gallery_dir).as_posix()


def test_the_feature_cache_is_used_only_for_what_it_was_made_from(gallery_dir, tiny_clip_dir, tmp_path, monkeypatch):
    """A stale --cache (other images, another encoder) is embedded again; unreadable files are listed."""
    import shutil

    from semcopy_lib.train import run

    images = tmp_path / "images"
    shutil.copytree(gallery_dir, images)
    (images / "animals" / "broken.png").write_bytes(b"not a png")
    built = []
    real = run.build_feature_cache
    monkeypatch.setattr(run, "build_feature_cache", lambda *a, **kw: built.append(1) or real(*a, **kw))
    config = TrainConfig(encoder="clip-vit-b32", encoder_path=str(tiny_clip_dir), epochs=1, p=2, k=2, hidden=8,
                         val_fraction=0.34)
    cache = tmp_path / "views.npz"

    def train():
        return run.train_head(images, tmp_path / "head.pt", config, photos=[], cache=cache, progress=False)

    report = train()
    assert built == [1] and [p for p, _ in report["skipped"]] == [str(images / "animals" / "broken.png")]
    train()
    assert built == [1]  # the same images, encoder and settings: the cache
    shutil.copyfile(images / "food" / "img01.png", images / "animals" / "img00.png")  # one image changed
    train()
    assert built == [1, 1]
    config = TrainConfig(encoder="clip-vit-b32", encoder_path=str(tiny_clip_dir), epochs=1, p=2, k=2, hidden=8,
                         val_fraction=0.34, seed=5)  # other views
    train()
    assert built == [1, 1, 1]
