import time

import numpy as np
import pytest
import torch
from skimage import data

from semcopy_lib.data import load_image
from semcopy_lib.encoders import EncoderUnavailable, create_encoder, list_encoders


def windows_and_pasted(encoder, image):
    """The ``windows`` proposer's (R, D) vectors and R boxes, and the ``pasted`` proposer's boxes, of one
    picture (one forward pass, as in search)."""
    from semcopy_lib.query import QueryConfig, QueryImage
    from semcopy_lib.query.proposers.pasted import pasted
    from semcopy_lib.query.proposers.windows import windows
    from semcopy_lib.segment import Layout

    query = QueryImage(image, encoder, QueryConfig(), _layout=Layout("single"))
    found = windows(query)
    return np.stack([p.vector for p in found]), [p.box for p in found], [p.box for p in pasted(query)]


@pytest.fixture(scope="module")
def effnet():
    return create_encoder("effnet-lite0", device="cpu")


def test_registry_lists_both_with_availability():
    infos = {i.name: i for i in list_encoders()}
    assert {"effnet-lite0", "clip-vit-b32"} <= set(infos)
    assert infos["effnet-lite0"].available is True
    assert all(isinstance(i.note, str) and i.note for i in infos.values())


def test_unknown_encoder_names_the_known_ones():
    with pytest.raises(KeyError, match="effnet-lite0"):
        create_encoder("no-such-encoder")


def test_effnet_has_real_imagenet_weights(effnet):
    """A cat photo gets a cat class (ImageNet 281-285) in its top-5 logits: the weights loaded strictly."""
    pixels = effnet.preprocess(load_image(data.chelsea()))[None]
    with torch.inference_mode():
        top5 = effnet.logits(pixels).topk(5).indices[0].tolist()
    assert set(top5) & {281, 282, 283, 284, 285}


def test_weights_load_under_either_key_naming_and_a_wrong_file_is_refused(tmp_path):
    """The bundled file (the old package's key names) and a file in timm's names give the same network."""
    from semcopy_lib.encoders.effnet import _weights_file, build_net, load_weights

    bundled = load_weights(build_net(), _weights_file()).state_dict()
    assert not any(k.startswith("_") for k in bundled)
    torch.save(bundled, tmp_path / "timm.pt")
    again = load_weights(build_net(), tmp_path / "timm.pt").state_dict()
    assert all(torch.equal(bundled[k], again[k]) for k in bundled)
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="tensors"):
        load_weights(build_net(), tmp_path / "other.pt")


def test_embeddings_are_unit_rows_and_batching_does_not_change_them(effnet):
    images = [load_image(data.chelsea()), load_image(data.astronaut()), load_image(data.coffee())]
    together = effnet.embed(images, batch_size=3)
    one_by_one = np.concatenate([effnet.embed([im], batch_size=1) for im in images])
    assert together.shape == (3, 1280) and together.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(together, one_by_one, atol=1e-4)
    assert together[0] @ together[1] < 0.9  # different photos are not the same vector


def test_channels_last_gives_the_same_embeddings(effnet):
    """effnet runs channels-last on CPU (faster); the vectors must be those of the plain layout."""
    images = [load_image(data.chelsea()), load_image(data.astronaut()), load_image(data.coffee())]
    assert effnet.memory_format == torch.channels_last
    effnet.use_runtime("torch")  # the layouts are PyTorch's
    fast = effnet.embed(images)
    effnet.memory_format = torch.contiguous_format
    try:
        plain = effnet.to(memory_format=torch.contiguous_format).embed(images)
    finally:
        effnet.memory_format = torch.channels_last
        effnet.to(memory_format=torch.channels_last).use_runtime("onnx")
    assert (fast * plain).sum(axis=1).min() >= 0.9999


def test_batch_norms_are_folded_into_the_convolutions_without_changing_vectors(effnet):
    from semcopy_lib.encoders.effnet import create_effnet_lite0

    images = [load_image(data.chelsea()), load_image(data.astronaut()), load_image(data.coffee())]
    plain = create_effnet_lite0(options={"fuse_bn": False}, device="cpu")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in effnet.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules()) == 49
    assert effnet.use_runtime("onnx") == plain.use_runtime("onnx") == "onnx"  # both fp32
    assert (effnet.embed(images) * plain.embed(images)).sum(axis=1).min() >= 0.99999


def test_preprocessing_is_the_encoder_s_own(effnet):
    x = effnet.preprocess(load_image(data.chelsea()))
    assert x.shape == (3, 224, 224)
    assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0  # (x - 0.5) / 0.5


def test_tiny_clip_loads_through_the_same_path_as_a_real_checkpoint(tiny_clip_dir):
    enc = create_encoder("clip-vit-b32", path=str(tiny_clip_dir), device="cpu")
    assert enc.config.image_size == 32 and enc.config.resize == "center-crop"
    vecs = enc.embed([load_image(data.chelsea()), load_image(data.coffee())])
    assert vecs.shape == (2, 16)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_clip_offline_fails_fast_with_instructions(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("semcopy_lib.encoders.clip._cached_snapshot", lambda repo: None)  # nothing cached
    monkeypatch.delenv("SEMCOPY_CLIP_PATH", raising=False)
    start = time.monotonic()
    with pytest.raises(EncoderUnavailable) as err:
        create_encoder("clip-vit-b32")
    assert time.monotonic() - start < 3.0
    assert "--encoder-path" in str(err.value) and "SEMCOPY_CLIP_PATH" in str(err.value)


def test_clip_path_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(EncoderUnavailable, match="no config.json"):
        create_encoder("clip-vit-b32", path=str(tmp_path))


def test_onnx_runtime_gives_the_pytorch_vectors_windows_and_subject_boxes(effnet):
    """Frozen CPU inference runs in ONNX Runtime: the same vectors as PyTorch at every size, and
    the same windows and pasted-subject boxes (the probe reads two inner blocks of the same pass)."""
    images = [load_image(data.chelsea()), load_image(data.astronaut()), load_image(data.coffee())]
    assert effnet.use_runtime("onnx") == "onnx"
    onnx = [effnet.embed(images, size=s) for s in (224, 320)]
    onnx_windows = windows_and_pasted(effnet, images[1])
    assert effnet.use_runtime("torch") == "torch"
    try:
        plain = [effnet.embed(images, size=s) for s in (224, 320)]
        plain_windows = windows_and_pasted(effnet, images[1])
    finally:
        effnet.use_runtime("onnx")
    for a, b in zip(onnx, plain):
        assert (a * b).sum(axis=1).min() >= 0.99999
    assert (onnx_windows[0] * plain_windows[0]).sum(axis=1).min() >= 0.99999
    assert onnx_windows[1:] == plain_windows[1:]


def test_openvino_keeps_the_first_blocks_in_fp32_and_stays_within_0_999_of_float32():
    """OpenVINO runs the stem and blocks 0-4 in fp32 and the rest in bf16 (all in fp32 on a CPU without
    native bf16): the head's vectors at 224 and 320 px and the windows within 0.999 cosine of PyTorch's
    fp32 ones, on photos and on a clip art pasted on one; the probe finds the same pasted subject."""
    import random

    from semcopy_lib.data import compose
    from semcopy_lib.data.samples import sample_photo_files
    from semcopy_lib.encoders.openvino_runtime import openvino_bf16
    from semcopy_lib.segment.layout import iou
    from tests.test_pasted import _clip_art

    encoder = create_encoder("effnet-lite0-semcopy", device="cpu")
    photo = load_image(sample_photo_files()["coffee"], max_side=640)
    query, _ = compose.on_background(_clip_art(5), photo, random.Random(2), scale=(0.45, 0.45))
    images = [load_image(data.chelsea()), load_image(data.astronaut()), photo, query, _clip_art(7).convert("RGB")]
    assert encoder.use_runtime("openvino") == "openvino"
    assert encoder.precision() == ("mixed-bf16" if openvino_bf16() else "fp32")
    mixed = [encoder.embed(images, size=s) for s in (224, 320)]
    mixed_windows = windows_and_pasted(encoder, query)
    assert encoder.use_runtime("torch") == "torch" and encoder.precision() == "fp32"
    plain = [encoder.embed(images, size=s) for s in (224, 320)]
    plain_windows = windows_and_pasted(encoder, query)
    for a, b in zip(mixed, plain):
        np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
        assert (a * b).sum(axis=1).min() >= 0.999
    assert mixed_windows[1] == plain_windows[1]
    assert (mixed_windows[0] * plain_windows[0]).sum(axis=1).min() >= 0.999
    assert len(plain_windows[2]) >= 1 and iou(mixed_windows[2][0], plain_windows[2][0]) >= 0.9


@pytest.mark.parametrize("native_bf16", [True, False])
def test_auto_runtime_is_openvino_where_bf16_is_native_else_onnx(monkeypatch, native_bf16):
    """``auto`` (the default): every pass in OpenVINO where the CPU runs bf16 natively (vectors and
    windows within 0.999 cosine of fp32, the same windows' boxes and pasted subject), else ONNX Runtime's
    exact fp32 and nothing converted for OpenVINO."""
    import random

    from semcopy_lib.data import compose
    from semcopy_lib.data.samples import sample_photo_files
    from semcopy_lib.encoders import effnet as E
    from semcopy_lib.encoders.openvino_runtime import openvino_installed
    from semcopy_lib.segment.layout import iou
    from tests.test_pasted import _clip_art

    monkeypatch.setattr(E, "openvino_bf16", lambda: native_bf16)
    encoder = create_encoder("effnet-lite0-semcopy", device="cpu").eval()  # (train mode drops compiled graphs)
    photo = load_image(sample_photo_files()["coffee"], max_side=640)
    query, _ = compose.on_background(_clip_art(5), photo, random.Random(2), scale=(0.45, 0.45))
    images = [load_image(data.chelsea()), photo, query]
    assert encoder.use_runtime("onnx") == "onnx" and encoder.precision() == "fp32"
    exact, exact_windows = encoder.embed(images, size=320), windows_and_pasted(encoder, query)
    mixed = native_bf16 and openvino_installed()
    assert encoder.use_runtime("auto") == ("openvino" if mixed else "onnx")
    assert encoder.precision() == ("mixed-bf16" if mixed else "fp32")
    auto, auto_windows = encoder.embed(images, size=320), windows_and_pasted(encoder, query)
    # every pass ran in OpenVINO, and only then; ONNX Runtime's graph was not even exported
    assert (encoder.base._openvino is not None) == mixed and (encoder.base._onnx is None) == mixed
    if mixed:
        assert (auto * exact).sum(axis=1).min() >= 0.999
    else:
        np.testing.assert_allclose(auto, exact, atol=1e-6)
    assert (auto_windows[0] * exact_windows[0]).sum(axis=1).min() >= (0.999 if mixed else 0.999999)
    assert auto_windows[1] == exact_windows[1]
    assert len(exact_windows[2]) >= 1 and iou(auto_windows[2][0], exact_windows[2][0]) >= 0.9


def test_prepare_builds_the_runtimes_graphs_in_the_background(monkeypatch):
    """A server's ``prepare()`` builds its runtime's graphs in a thread (OpenVINO's where the CPU runs bf16
    natively, else ONNX Runtime's), so that its first search does not wait; nothing is built for PyTorch."""
    import threading

    from semcopy_lib.encoders import effnet as E
    from semcopy_lib.encoders.openvino_runtime import openvino_installed

    monkeypatch.setattr(E, "openvino_bf16", lambda: True)
    encoder = create_encoder("effnet-lite0-semcopy", device="cpu").eval()
    base = encoder.base
    base.use_runtime("torch")
    encoder.prepare()
    assert not [t for t in threading.enumerate() if t.name == "export"] and base._onnx is None
    base.use_runtime("auto")
    encoder.prepare()
    for thread in [t for t in threading.enumerate() if t.name == "export"]:
        thread.join(timeout=120)
    assert (base._openvino is not None) == openvino_installed() and (base._onnx is None) == openvino_installed()
    encoder.prepare([(1, 64), (2, 96)])  # in OpenVINO each input shape named is compiled too
    for thread in [t for t in threading.enumerate() if t.name == "export"]:
        thread.join(timeout=120)
    if openvino_installed():
        assert set(base._openvino._compiled) == {(1, 3, 64, 64), (2, 3, 96, 96)}


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run on a GPU machine)")


@pytest.mark.parametrize("precision, least", [("bf16", 0.997), ("fp16", 0.9999)])
def test_reduced_precision_inference_stays_near_float32(effnet, monkeypatch, precision, least):
    """$SEMCOPY_PRECISION runs frozen inference under autocast (here on the CPU, in PyTorch even though
    ONNX Runtime is the CPU runtime: ONNX would silently stay fp32): unit float32 rows, not fp32's
    numbers, within ``least`` cosine of them; windows likewise, the same subject boxes."""
    images = [load_image(data.chelsea()), load_image(data.astronaut()), load_image(data.coffee())]
    assert effnet.use_runtime("onnx") == "onnx" and effnet.precision() == "fp32"
    full, full_windows = effnet.embed(images), windows_and_pasted(effnet, images[1])
    monkeypatch.setenv("SEMCOPY_PRECISION", precision)
    assert effnet.precision() == precision
    reduced, reduced_windows = effnet.embed(images), windows_and_pasted(effnet, images[1])
    assert reduced.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(reduced, axis=1), 1.0, atol=1e-5)
    assert np.abs(reduced - full).max() > 1e-5  # autocast ran
    assert (reduced * full).sum(axis=1).min() >= least
    assert (reduced_windows[0] * full_windows[0]).sum(axis=1).min() >= least - 0.002
    assert reduced_windows[2] == full_windows[2]


def test_unknown_precision_is_a_one_line_error(effnet, monkeypatch):
    monkeypatch.setenv("SEMCOPY_PRECISION", "int4")
    with pytest.raises(EncoderUnavailable, match="SEMCOPY_PRECISION='int4': use one of fp32, fp16, bf16"):
        effnet.embed([load_image(data.coffee())])


@CUDA
def test_cuda_embeds_in_fp16_within_0_999_of_cpu_float32(effnet):
    images = [load_image(data.chelsea()), load_image(data.astronaut()), load_image(data.coffee())]
    gpu = create_encoder("effnet-lite0-semcopy", device="cuda")
    cpu = create_encoder("effnet-lite0-semcopy", device="cpu")
    assert gpu.base.precision() == "fp16"
    for size in (224, 320):
        assert (gpu.embed(images, size=size) * cpu.embed(images, size=size)).sum(axis=1).min() >= 0.999
    on_gpu, on_cpu = windows_and_pasted(gpu, images[1]), windows_and_pasted(cpu, images[1])
    assert (on_gpu[0] * on_cpu[0]).sum(axis=1).min() >= 0.999


@pytest.mark.parametrize("runtime", ["onnx", "openvino"])
def test_weights_changed_in_training_are_exported_again(runtime):
    """After train mode (where the backbone may change), frozen inference uses the new weights."""
    from semcopy_lib.encoders.effnet import create_effnet_lite0

    enc = create_effnet_lite0(device="cpu")
    assert enc.use_runtime(runtime) == runtime
    images = [load_image(data.chelsea()), load_image(data.coffee())]
    before = enc.embed(images)
    enc.train()
    with torch.no_grad():
        enc.net.conv_head.weight[::2].mul_(-1.0)
    enc.eval()
    after = enc.embed(images)
    enc.use_runtime("torch")
    assert np.abs(after - before).max() > 1e-3  # the change is seen...
    assert (after * enc.embed(images)).sum(axis=1).min() >= (0.99999 if runtime == "onnx" else 0.999)  # ...as PyTorch sees it


def test_runtime_comes_from_the_environment_and_falls_back_to_pytorch(monkeypatch):
    import semcopy_lib.encoders.effnet as effnet_module
    from semcopy_lib.encoders.effnet import create_effnet_lite0

    def no_export(*args, **kwargs):
        raise AssertionError("exported to ONNX although the runtime is torch")

    monkeypatch.setattr(effnet_module, "OnnxForward", no_export)
    monkeypatch.setenv("SEMCOPY_RUNTIME", "torch")
    enc = create_effnet_lite0(pretrained=False, device="cpu")
    assert enc.embed([load_image(data.coffee())]).shape == (1, 1280)
    assert enc.use_runtime("openvino") == "openvino"
    monkeypatch.setattr(effnet_module, "openvino_installed", lambda: False)
    assert enc.use_runtime("openvino") == "onnx"  # openvino missing: ONNX Runtime
    monkeypatch.setenv("SEMCOPY_RUNTIME", "onnx")
    monkeypatch.setattr(effnet_module, "onnx_installed", lambda: False)
    assert enc.use_runtime("onnx") == "torch"  # onnxruntime missing: PyTorch, as before
    assert enc.use_runtime("openvino") == "torch"
    assert enc.embed([load_image(data.coffee())]).shape == (1, 1280)
    monkeypatch.setenv("SEMCOPY_RUNTIME", "tensorrt")
    with pytest.raises(EncoderUnavailable, match="SEMCOPY_RUNTIME='tensorrt'"):
        create_effnet_lite0(pretrained=False, device="cpu")


def test_a_drawing_with_transparency_gets_one_more_gallery_view_on_grey(effnet):
    """Gallery views: on white at 224 and 320 px, and, for an image with transparency, on mid-grey
    at 224 (what a subject lifted onto another background is nearer to); opaque images get no such view."""
    from PIL import Image, ImageDraw

    from semcopy_lib.data.loading import to_rgb

    drawing = Image.new("RGBA", (160, 120), (0, 0, 0, 0))
    ImageDraw.Draw(drawing).ellipse((30, 20, 130, 100), fill=(200, 30, 30, 255), outline=(0, 0, 0, 255), width=4)
    assert effnet.config.index_backdrops == (128,)
    with_alpha, opaque = effnet.embed_gallery([drawing, to_rgb(drawing)])
    assert with_alpha.shape == (3, 1280) and opaque.shape == (2, 1280)
    np.testing.assert_allclose(with_alpha[:2], opaque, atol=1e-5)  # the white views are the opaque image's
    np.testing.assert_allclose(with_alpha[2], effnet.embed([to_rgb(drawing, 128)])[0], atol=1e-5)
    assert with_alpha[2] @ with_alpha[0] < 0.99  # a view of its own
    # an alpha band with no transparent pixel is opaque: no grey view (it would repeat the white one)
    [solid] = effnet.embed_gallery([to_rgb(drawing).convert("RGBA")])
    np.testing.assert_allclose(solid, opaque, atol=1e-5)


def test_a_shrink_is_pillow_s_bicubic_to_a_level_and_an_enlargement_is_pillow_s_own():
    """The encoders' resize: PyTorch's antialiased bicubic for a shrink (the gallery's and the queries'
    pixels as Pillow makes them, to one level here and there), Pillow for an enlargement."""
    from PIL import Image

    from semcopy_lib.encoders.base import bicubic

    image = load_image(data.chelsea())  # 451 x 300
    got = bicubic(image, 224, 224)
    assert got.shape == (3, 224, 224) and got.dtype == torch.uint8
    diff = np.abs(got.permute(1, 2, 0).numpy().astype(int) - np.asarray(image.resize((224, 224), Image.BICUBIC), int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    small = image.resize((100, 60))
    np.testing.assert_array_equal(bicubic(small, 224, 120).permute(1, 2, 0).numpy(),
                                  np.asarray(small.resize((224, 120), Image.BICUBIC)))
    np.testing.assert_array_equal(bicubic(small, 100, 60).permute(1, 2, 0).numpy(), np.asarray(small))


def test_windows_are_pooled_as_each_window_pooled_on_its_own(effnet):
    """``pool_cells`` (one summed-area table for all windows) gives each window's GeM, also where a
    channel is dead (all zero: its windows sit at the clamp's floor, not at a rounding below it)."""
    import torch.nn.functional as F

    from semcopy_lib.encoders.base import FeatureMaps

    last = torch.rand(1280, 12, 12, generator=torch.Generator().manual_seed(0)) * 6  # ReLU6 outputs
    last[:100] = 0
    last[100:200, :6] = 0  # dead in the top half only
    cells = [(0, 0, 5, 5), (2, 4, 7, 7), (3, 3, 9, 9), (0, 0, 12, 12), (6, 0, 6, 12), (0, 2, 5, 5)]
    got = effnet.pool_cells(FeatureMaps(last, {}, "test"), cells)
    want = np.stack([F.normalize(effnet._gem(last[:, i : i + h, j : j + w], dims=(1, 2)), dim=0).numpy()
                     for i, j, h, w in cells])
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_gpu_batches_are_padded_to_a_few_sizes():
    """Powers of two up to the batch size (a GPU pays each new shape's first kernel calls once), never
    fewer than the images."""
    from semcopy_lib.encoders.base import padded_size

    assert [padded_size(n, 32) for n in (1, 2, 3, 5, 8, 9, 17, 31, 32)] == [1, 2, 4, 8, 8, 16, 32, 32, 32]
    assert (padded_size(20, 24), padded_size(5, 5), padded_size(3, 1)) == (24, 5, 3)


def test_an_encoder_off_the_cpu_reports_pytorch_as_its_runtime():
    """bench speed on an H200 said runtime onnx while PyTorch ran the network on the GPU."""
    from semcopy_lib.encoders.effnet import create_effnet_lite0

    enc = create_effnet_lite0(device="cpu")
    assert enc.use_runtime("onnx") == "onnx"
    enc.to("meta")  # any device but the CPU, as a GPU would be
    assert enc.use_runtime("onnx") == "torch"


def test_onnx_exports_take_turns(monkeypatch):
    """torch's ONNX exporter keeps global state, so two exports at once fail (a server's background export
    beside another encoder's): ``onnx_export`` lets one run at a time."""
    import threading
    import time

    from semcopy_lib.encoders import onnx_runtime

    running, most = [0], [0]
    export = torch.onnx.export

    def watched(*args, **kwargs):
        running[0] += 1
        most[0] = max(most[0], running[0])
        time.sleep(0.05)  # long enough for the other thread to come in, were it let in
        try:
            return export(*args, **kwargs)
        finally:
            running[0] -= 1

    monkeypatch.setattr(torch.onnx, "export", watched)
    net = torch.nn.Conv2d(3, 4, 3).eval()
    threads = [threading.Thread(target=onnx_runtime.onnx_export, args=(net, torch.zeros(1, 3, 8, 8))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1
