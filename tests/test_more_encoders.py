"""The seed's other models, working: CLIP x BLIP fusion, YOLO embeddings, and parts joined properly."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from semcopy_lib.encoders import create_encoder
from semcopy_lib.losses import CombinedLoss


def pictures(n: int = 4) -> list[Image.Image]:
    return [Image.effect_mandelbrot((96, 80), (-2 + 0.3 * i, -1.2, 1, 1.2), 30 + 10 * i).convert("RGB") for i in range(n)]


@pytest.fixture()
def fusion(tiny_clip_dir, tiny_blip_dir):
    return create_encoder("clip-blip-fusion", clip_path=str(tiny_clip_dir), blip_path=str(tiny_blip_dir),
                          width=16, layers=2, heads=2, dim=12, device="cpu")


def test_fusion_embeds_a_batch_at_each_backbone_s_own_resolution(fusion):
    assert fusion.config.image_size == 48 and fusion.clip_size == 32  # BLIP's size in, CLIP's derived
    vectors = fusion.embed(pictures())
    assert vectors.shape == (4, 12)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not any(p.requires_grad for p in fusion.clip_vision.parameters())  # backbones frozen by default
    assert not any(p.requires_grad for p in fusion.blip_vision.parameters())


def test_fusion_output_depends_on_both_backbones(fusion):
    torch.manual_seed(0)
    clip_px, blip_px = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        base = fusion.fuse(clip_px, blip_px)
        blip_moved = fusion.fuse(clip_px, blip_px + 0.5 * torch.randn_like(blip_px))
        clip_moved = fusion.fuse(clip_px + 0.5 * torch.randn_like(clip_px), blip_px)
    assert (blip_moved - base).abs().max() > 1e-3 and (clip_moved - base).abs().max() > 1e-3


def test_fusion_trains_one_step_with_combined_loss_and_saves(fusion, tmp_path):
    from semcopy_lib.data import synth

    images = pictures()
    views = [synth.mirror(im) for im in images]
    batch = lambda ims: torch.stack([fusion.preprocess(im) for im in ims])  # noqa: E731
    loss_fn = CombinedLoss({"triplet": 0.5, "infonce": 0.5})
    optimiser = torch.optim.AdamW(fusion.trainable_parameters(), lr=1e-2)
    fusion.train()
    loss = loss_fn(fusion(batch(images)), fusion(batch(views)), torch.arange(4))
    loss.backward()
    grads = {name: p.grad for name, p in fusion.head.named_parameters()}
    for part in ("proj_clip.1.weight", "proj_blip.1.weight", "clip_to_blip.0.attn.in_proj_weight",
                 "blip_to_clip.1.attn.in_proj_weight"):
        assert grads[part] is not None and grads[part].abs().sum() > 0, part  # both directions learn
    before = fusion.embed(images)
    optimiser.step()
    after = fusion.embed(images)
    assert np.abs(after - before).max() > 1e-4
    path = fusion.save(tmp_path / "fusion.pt")
    again = create_encoder("clip-blip-fusion", path=str(path), device="cpu")  # backbones' folders come from it
    np.testing.assert_allclose(again.embed(images), after, atol=1e-5)


def test_fusion_index_builds_and_searches_end_to_end(gallery_dir, tiny_clip_dir, tiny_blip_dir, tmp_path,
                                                     monkeypatch, capsys):
    from semcopy_lib.cli import main

    monkeypatch.setenv("SEMCOPY_CLIP_PATH", str(tiny_clip_dir))
    monkeypatch.setenv("SEMCOPY_BLIP_PATH", str(tiny_blip_dir))
    index = tmp_path / "idx"
    assert main(["index", "build", str(gallery_dir), "--index", str(index), "--encoder", "clip-blip-fusion"]) == 0
    query = next(gallery_dir.rglob("img05.png"))
    capsys.readouterr()
    assert main(["search", "--index", str(index), "--json", "-k", "1", "--no-regions", str(query)]) == 0
    hit = json.loads(capsys.readouterr().out)["hits"][0]
    assert hit["id"] == query.relative_to(gallery_dir).as_posix() and hit["score"] == pytest.approx(1.0, abs=1e-4)


@pytest.fixture(scope="module")
def yolo():
    return create_encoder("yolo-oiv7", path="yolov8n.yaml", device="cpu")


def test_yolo_embeds_pooled_sppf_features_reproducibly(yolo):
    vectors = yolo.embed(pictures(3))
    assert yolo.random_weights and yolo.dim == 256 and vectors.shape == (3, 256)  # yolov8n's SPPF width
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    again = create_encoder("yolo-oiv7", path="yolov8n.yaml", device="cpu")
    np.testing.assert_allclose(again.embed(pictures(3)), vectors, atol=1e-5)  # seeded: an index and its searches agree


def test_a_head_on_yolo_trains_one_step_and_saves(yolo, tmp_path):
    from semcopy_lib.encoders.headed import save_head
    from semcopy_lib.train import ResidualHead

    images = pictures()
    head = ResidualHead(yolo.dim, 32)
    torch.nn.init.normal_(head.fc2.weight, std=0.01)
    optimiser = torch.optim.AdamW(head.parameters(), lr=1e-2)
    a = head(torch.from_numpy(yolo.embed(images)))
    b = head(torch.from_numpy(yolo.embed([im.transpose(Image.FLIP_LEFT_RIGHT) for im in images])))
    loss = CombinedLoss({"triplet": 0.5, "infonce": 0.5})(a, b, torch.arange(4))
    loss.backward()
    optimiser.step()
    assert head.fc1.weight.grad.abs().sum() > 0
    path = save_head(tmp_path / "yolo-head.pt", head, "yolo-oiv7", {}, {}, None, base_path="yolov8n.yaml")
    loaded = create_encoder("semcopy-head", path=str(path), device="cpu")
    with torch.no_grad():
        expected = head(torch.from_numpy(yolo.embed(images))).numpy()
    np.testing.assert_allclose(loaded.embed(images), expected, atol=2e-3)  # float16 weights in the file


def test_concat_normalises_each_part_and_weights_the_cosines(yolo):
    enc = create_encoder("concat", parts="effnet-lite0,yolo-oiv7", weights="1,0.5", paths=",yolov8n.yaml", device="cpu")
    images = pictures(3)
    joined = enc.embed(images)
    assert joined.shape == (3, 1280 + 256)
    np.testing.assert_allclose(np.linalg.norm(joined, axis=1), 1.0, atol=1e-5)
    effnet = create_encoder("effnet-lite0").embed(images)
    parts_cos = (effnet @ effnet.T) * (2 / 3) + (yolo.embed(images) @ yolo.embed(images).T) * (1 / 3)
    np.testing.assert_allclose(joined @ joined.T, parts_cos, atol=1e-4)  # no part dominates by its scale
    rebuilt = create_encoder("concat", path=enc.config.path)  # what an index's manifest keeps
    np.testing.assert_allclose(rebuilt.embed(images), joined, atol=1e-5)


def test_semcopy_train_trains_the_fusion_layers_and_the_checkpoint_loads(gallery_dir, tiny_clip_dir, tiny_blip_dir,
                                                                         tmp_path, monkeypatch, capsys):
    from semcopy_lib.cli import main

    monkeypatch.setenv("SEMCOPY_CLIP_PATH", str(tiny_clip_dir))
    monkeypatch.setenv("SEMCOPY_BLIP_PATH", str(tiny_blip_dir))
    out = tmp_path / "fusion.pt"
    assert main(["train", str(gallery_dir), "--encoder", "clip-blip-fusion", "--epochs", "1", "--out", str(out),
                 "--val-fraction", "0.6", "--json"]) == 0  # by their name hashes: food held out, 2 classes train
    report = json.loads(capsys.readouterr().out)
    assert report["checkpoint"] == str(out) and report["train_classes"] == 2 and report["val_classes"] == 1
    assert set(report["after"]) == set(report["before"]) == {f"r1_{k}" for k in (
        "crop_jpeg", "line_art", "pencil", "cartoon", "colour", "on_photo", "turned")} | {"class_map@10"}
    trained = create_encoder("clip-blip-fusion", path=str(out))
    untrained = create_encoder("clip-blip-fusion")
    assert np.abs(trained.embed(pictures(2)) - untrained.embed(pictures(2))).max() > 1e-4  # the layers moved


def test_bench_encoders_lists_every_encoder_and_marks_random_ones(gallery_dir, capsys):
    from semcopy_lib.cli import main
    from semcopy_lib.encoders import encoder_names

    assert main(["bench", "encoders", str(gallery_dir), "-n", "3", "--json"]) == 0
    rows = {r["encoder"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(encoder_names())
    assert rows["effnet-lite0"]["weights"] == "real" and rows["effnet-lite0"]["crops_r1"] >= 2 / 3
    for name in ("clip-vit-b32", "clip-blip-fusion", "yolo-oiv7"):
        assert rows[name]["weights"].startswith("random") and 0 <= rows[name]["crops_r1"] <= 1, rows[name]
    assert rows["semcopy-head"]["weights"].startswith("skipped")


def test_a_head_on_a_concat_encoder_trains_one_step_and_saves(tmp_path):
    """Joined encoders train and save like any other: a head on their joined vector."""
    from semcopy_lib.encoders.headed import save_head
    from semcopy_lib.train import ResidualHead

    enc = create_encoder("concat", parts="effnet-lite0,yolo-oiv7", weights="1,1", paths=",yolov8n.yaml", device="cpu")
    images = pictures()
    head = ResidualHead(enc.dim, 32)
    torch.nn.init.normal_(head.fc2.weight, std=0.01)
    a = head(torch.from_numpy(enc.embed(images)))
    b = head(torch.from_numpy(enc.embed([im.transpose(Image.FLIP_LEFT_RIGHT) for im in images])))
    CombinedLoss({"triplet": 0.5, "infonce": 0.5})(a, b, torch.arange(4)).backward()
    torch.optim.SGD(head.parameters(), lr=0.1).step()
    path = save_head(tmp_path / "concat-head.pt", head, "concat", {}, {}, None, base_path=enc.config.path)
    loaded = create_encoder("semcopy-head", path=str(path))
    with torch.no_grad():
        expected = head(torch.from_numpy(enc.embed(images))).numpy()
    np.testing.assert_allclose(loaded.embed(images), expected, atol=2e-3)
