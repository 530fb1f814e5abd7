"""``semcopy bench speed``: ingestion throughput, warm query latency, and search over a million vectors.

Measured side by side in one run on whatever machine runs it:

- ``ingest_img_per_s``: :func:`~semcopy_lib.app.index_files` (decoding and resizing in threads beside inference,
  batches; on a CPU, ONNX Runtime, or OpenVINO in mixed bf16 with ``SEMCOPY_RUNTIME=openvino``: see
  ``runtime`` and ``precision``) over real image files, every gallery
  view included; both ingestions are warmed up first, untimed (one batch here, one image for the naive
  loop; then every batch size at every view's side: on a GPU every padded size,
  :func:`~semcopy_lib.encoders.base.padded_size`, on a CPU 1 to the encoder's ``cpu_batch``):
  ``ingest_warmup_s`` is the time of that, one-off costs included (ONNX export and OpenVINO's compile
  of each input shape on CPU; on CUDA, kernels loaded at their first call, which can take longer than
  many later batches);
- ``ingest_naive_img_per_s``: the same files and views with the same weights on the same device, one
  image at a time, contiguous fp32 in eager PyTorch, decoding in line; ``ingest_min_cosine``: the
  numerics check, the smallest cosine between an image's vector from the optimised path and the naive
  fp32 one;
- ``query_p50_ms`` / ``query_p95_ms``: a warm :class:`~semcopy_lib.app.SearchService` answering one
  photo at a time, end to end (decode, whole image, then layout analysis, subjects and windows when it
  is not a copy, search) over a gallery grown to ``gallery_size`` vectors with synthetic neighbours of
  the real ones (each with the thumbnail of the real image it was drawn around, so that the pixel checks
  of its hits cost what they cost in a real gallery); half the photos are copies (crop + JPEG of a
  gallery image), half unseen pictures (which go through the whole region path), also reported apart; ``query_copy_stages_ms`` and
  ``query_unseen_stages_ms``: the mean milliseconds a query of each half spends in each stage of
  :data:`~semcopy_lib.query.clock.STAGES`; ``query_scan``: how the exact scan of the gallery ran, by
  query rows searched at once (:func:`~semcopy_lib.index.flat.chosen_ways`: bf16 screening or float32,
  chosen by timing where the CPU has native bf16), or a sentence where nothing was chosen;
- ``search_1m_*``: ``million`` synthetic unit vectors of the encoder's dimension, drawn around the real
  gallery vectors (so that they cluster as embeddings do; ``search_1m_synthetic``: the noise model, see
  :func:`draw_synthetic`) and streamed, never all in memory, into the index their size calls for:
  FAISS ``IVF{nlist},SQ8`` up to :data:`~semcopy_lib.index.compressed.SQ8_MAX_BYTES` of 8-bit vectors,
  the compressed index beyond (:class:`~semcopy_lib.index.compressed.CompressedIndex`: ``nprobe`` and
  ``search_1m_shortlist`` chosen on 100 tuning queries, ``search_1m_recall_at_20_tuning``, and the
  figures reported on 100 others; ``search_1m_mapped_bytes``, its memory-mapped file), or with
  ``backend="milvus"`` Milvus as ``--backend milvus`` indexes use it: recall@20 against exact search,
  milliseconds per single query (at the smallest ``nprobe`` reaching recall 0.95 for IVF), the bytes the
  index keeps in memory (Milvus: its files), ``search_1m_build_s`` (training, adding, saving; not drawing
  the vectors); with CUDA present also ``search_1m_gpu_flat_*``: the same queries scanned exactly on the
  GPU (:class:`~semcopy_lib.index.flat.FlatScan`, float32).
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semcopy_lib.index.compressed import NPROBES
from semcopy_lib.index.flat import ExactTop, recall_at_k

#: Noise around a real vector that makes a synthetic one (per dimension, before normalising).
SYNTH_NOISE = 0.02
#: Images per batch of the optimised ingestion (``index_files``' default).
INGEST_BATCH = 32


def machine(cpuinfo: str | None = None) -> str:
    """CPU (and GPU) of this machine, in words: the CPU's model name with its family and model, clock and
    widest vector instructions (a virtual machine's name, e.g. "AMD EPYC", covers CPUs of several
    generations). ``cpuinfo``: the text of /proc/cpuinfo (default: read it; absent on some systems)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            break  # the first processor's block is enough
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    cpu = fields.get("model name") or platform.processor() or platform.machine()
    flags = set(fields.get("flags", "").split())
    isa = next((name for flag, name in (("amx_tile", "AMX"), ("avx512_bf16", "AVX-512 BF16"), ("avx512f", "AVX-512"),
                                        ("avx2", "AVX2")) if flag in flags), None)
    details = [f"family {fields['cpu family']}, model {fields['model']}" if {"cpu family", "model"} <= set(fields) else None,
               f"{float(fields['cpu MHz']):.0f} MHz" if fields.get("cpu MHz", "").replace(".", "", 1).isdigit() else None, isa]
    if any(details):
        cpu += f" ({', '.join(d for d in details if d)})"
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{cpu}, {os.cpu_count()} CPU threads, torch {torch.__version__}{gpu}"


def synthetic_vectors(real: np.ndarray, n: int, seed: int = 0, chunk: int = 100_000,
                      model: str = "noise") -> np.ndarray:
    """(n, D) float32 unit vectors drawn by :func:`draw_synthetic` (in memory: a few million at most)."""
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    start = 0
    for block in draw_synthetic(real, n, seed, chunk, model):
        out[start:start + len(block)] = block
        start += len(block)
    return out


#: Synthetic vector models: isotropic noise around real vectors, or noise with their spectrum.
SYNTHETIC_MODELS = ("noise", "spectrum")


def draw_synthetic(real: np.ndarray, n: int, seed: int = 0, chunk: int = 100_000, model: str = "noise"):
    """Yield (m, D) float32 unit-vector chunks, ``n`` in all, each a real vector plus noise, renormalised.

    ``model``: ``"noise"``, Gaussian noise of ``SYNTH_NOISE`` per dimension, isotropic: it spreads over
    every dimension, which real embeddings do not (a few hundred directions hold most of their variance);
    ``"spectrum"``, noise of the same energy shaped like the real vectors' covariance
    (:class:`SpectralNoise`), what a compression by PCA meets in real galleries. Streamed: 10M x 1280
    is 51 GB in float32.
    """
    if model not in SYNTHETIC_MODELS:
        raise ValueError(f"synthetic model {model!r}: one of {', '.join(SYNTHETIC_MODELS)}")
    real = np.asarray(real, dtype=np.float32)
    rng = np.random.default_rng(seed)
    shaped = SpectralNoise(real) if model == "spectrum" else None
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        block = real[rng.integers(0, len(real), m)]
        if shaped is None:
            block = block + rng.normal(0, SYNTH_NOISE, (m, real.shape[1])).astype(np.float32)
        else:
            block = block + shaped.draw(m, rng)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        yield block


class SpectralNoise:
    """Gaussian noise with the real vectors' Ledoit-Wolf covariance, scaled to ``SYNTH_NOISE`` per dimension.

    The covariance is the real vectors' sample covariance shrunk toward a multiple of the identity
    (``shrinkage`` of it, ``scikit-learn``'s Ledoit-Wolf estimate): a few hundred vectors fix the strong
    directions but not the weak ones, which get the isotropic share. A draw is
    ``scale * (sqrt(1 - s) w @ centred / sqrt(n) + sqrt(s * mu) z)``, ``w`` (n,) and ``z`` (D,) standard
    normal: n x D products a vector, not D x D.
    """

    def __init__(self, real: np.ndarray):
        from sklearn.covariance import LedoitWolf

        self.shrinkage = float(LedoitWolf(store_precision=False).fit(real).shrinkage_)
        centred = (real - real.mean(0)) / np.sqrt(len(real))  # centred.T @ centred is the covariance
        mu = float(np.sum(centred ** 2)) / real.shape[1]  # the identity target's scale
        scale = SYNTH_NOISE / np.sqrt(mu)  # the same energy as the isotropic model's noise
        self.low_rank = (scale * np.sqrt(1 - self.shrinkage) * centred).astype(np.float32)  # (n, D)
        self.iso = float(scale * np.sqrt(self.shrinkage * mu))

    def draw(self, m: int, rng: np.random.Generator) -> np.ndarray:
        """(m, D) float32 noise."""
        r, d = self.low_rank.shape
        out = rng.standard_normal((m, r), dtype=np.float32) @ self.low_rank
        out += self.iso * rng.standard_normal((m, d), dtype=np.float32)
        return out


def _readable(files, n: int) -> list:
    """The first ``n`` of ``files`` that decode, decoded as ingestion decodes them."""
    from semcopy_lib.app.indexing import DECODE_MAX_SIDE
    from semcopy_lib.data import ImageLoadError, load_image

    images = []
    for f in files:
        if len(images) == n:
            break
        try:
            images.append(load_image(f.path, max_side=DECODE_MAX_SIDE, keep_alpha=True, coarse=True))
        except ImageLoadError:
            continue
    return images


def _naive_ingest(encoder_name: str, encoder_path: str | None, files,
                  device: torch.device) -> tuple[float, dict[str, np.ndarray]]:
    """Images per second: decode, preprocess and embed one image at a time, contiguous fp32 on ``device``;
    and each image's first-view vector (D,), by gallery id."""
    from semcopy_lib.app.indexing import DECODE_MAX_SIDE
    from semcopy_lib.data import ImageLoadError, load_image
    from semcopy_lib.encoders import create_encoder

    enc = create_encoder(encoder_name, path=encoder_path, device=device)
    enc.use_runtime("torch")
    enc.memory_format = torch.contiguous_format
    enc.to(memory_format=torch.contiguous_format).eval()
    first: dict[str, np.ndarray] = {}
    with torch.inference_mode():
        for image in _readable(files, 1):  # untimed: first calls load kernels
            for pixels in enc.gallery_pixels(image):
                enc(pixels[None].to(device))
    start = time.perf_counter()
    with torch.inference_mode():
        for f in files:
            try:
                image = load_image(f.path, max_side=DECODE_MAX_SIDE, keep_alpha=True, coarse=True)  # as index_files decodes
            except ImageLoadError:
                continue
            vectors = [enc(pixels[None].to(device)) for pixels in enc.gallery_pixels(image)]  # one view at a time
            first[f.gallery_id] = vectors[0][0].cpu().numpy()
    return len(files) / (time.perf_counter() - start), first


def _gpu_flat(base: np.ndarray, q: np.ndarray, exact: np.ndarray, k: int = 20) -> dict[str, Any]:
    """Exact float32 scan of ``base`` (N, D) on the GPU: recall@k of ``q`` against ``exact``, ms a query."""
    from semcopy_lib.index.flat import FlatScan

    scan = FlatScan(base, device="cuda")
    _, found = scan.search(q, k)  # also copies the vectors to the GPU
    recall, ms = recall_at_k(found, exact), _ms_per_query(scan, q, k)
    return {"search_1m_gpu_flat_recall_at_20": round(recall, 4), "search_1m_gpu_flat_ms_per_query": round(ms, 3),
            "search_1m_gpu_flat_bytes": int(base.nbytes)}


def _ms_per_query(index, q: np.ndarray, k: int) -> float:
    t = time.perf_counter()
    for row in q:
        index.search(row[None], k)
    return (time.perf_counter() - t) / len(q) * 1000


def _million(real: np.ndarray, n: int, nlist: int, queries: int = 100, k: int = 20,
             model: str = "noise", progress: bool = False, backend: str = "faiss",
             compressed: bool = False) -> dict[str, Any]:
    """``n`` synthetic vectors in the index their size calls for: IVF-SQ8 in memory, or, past
    :data:`~semcopy_lib.index.compressed.SQ8_MAX_BYTES` of 8-bit vectors (or with ``compressed``), the
    compressed index; with ``backend="milvus"``, Milvus (Lite, or ``$SEMCOPY_MILVUS_URI``) as the index
    keeps them."""
    from semcopy_lib.index.compressed import SQ8_MAX_BYTES

    if backend == "milvus":
        return _milvus(real, n, queries, k, model, progress=progress)
    if compressed or n * real.shape[1] > SQ8_MAX_BYTES:
        return _compressed(real, n, queries, k, model, progress=progress)
    import faiss

    q = synthetic_vectors(real, queries, seed=2, model=model)
    top = ExactTop(q, k)
    index = faiss.index_factory(real.shape[1], f"IVF{nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
    sample = synthetic_vectors(real, min(n, 40 * nlist), seed=3, model=model)
    start = time.perf_counter()
    index.train(sample)
    build_s = time.perf_counter() - start  # training and adding, not drawing the vectors
    kept = [] if torch.cuda.is_available() else None  # the GPU's exact scan needs them all at once
    for block in draw_synthetic(real, n, seed=1, model=model):
        top.update(block)
        start = time.perf_counter()
        index.add(block)
        build_s += time.perf_counter() - start
        if kept is not None:
            kept.append(block)
    exact = top.ids
    gpu = _gpu_flat(np.concatenate(kept), q, exact) if kept is not None else {}
    del kept
    size = int(faiss.serialize_index(index).nbytes)
    result = {}
    for nprobe in NPROBES:
        if nprobe > nlist:
            break
        index.nprobe = nprobe
        recall = recall_at_k(index.search(q, k)[1], exact)
        result = {"search_1m_recall_at_20": round(recall, 4), "search_1m_ms_per_query": round(_ms_per_query(index, q, k), 3),
                  "search_1m_nprobe": nprobe}
        if recall >= 0.95:
            break
    result.update(gpu)
    result.update(search_1m_index_bytes=size, search_1m_vectors=n, search_1m_index=f"IVF{nlist},SQ8",
                  search_1m_build_s=round(build_s, 1), search_1m_synthetic=model)
    return result


def _milvus(real: np.ndarray, n: int, queries: int = 100, k: int = 20, model: str = "noise",
            progress: bool = False) -> dict[str, Any]:
    """``n`` synthetic vectors inserted through :class:`~semcopy_lib.index.backends.MilvusBackend` (what
    ``--backend milvus`` indexes use, its default index), streamed, then searched one query at a time.
    Build time counts the inserts and the flush that indexes them."""
    from tqdm.auto import tqdm

    from semcopy_lib.index.backends import MilvusBackend

    d = real.shape[1]
    q = synthetic_vectors(real, queries, seed=4, model=model)
    top = ExactTop(q, k)
    with tempfile.TemporaryDirectory(prefix="semcopy-milvus-") as tmp:
        # a name of its own, dropped at the end: on a server the collection would outlive the folder
        store = MilvusBackend(d, path=Path(tmp) / MilvusBackend.FILE, name=f"semcopy_bench_{uuid.uuid4().hex}")
        try:
            build_s, seen = 0.0, 0  # inserting, flushing and loading, not drawing the vectors
            for block in tqdm(draw_synthetic(real, n, seed=1, model=model), total=-(-n // 100_000),
                              desc="milvus", unit="100k", disable=not progress):
                top.update(block)
                start = time.perf_counter()
                store.add(np.arange(seen, seen + len(block), dtype=np.int64), block)
                build_s += time.perf_counter() - start
                seen += len(block)
            start = time.perf_counter()
            store.save(Path(tmp))  # flush: Milvus indexes what it holds
            store.search(q[:1], k)  # the collection is loaded at its first search
            build_s += time.perf_counter() - start
            recall = recall_at_k(store.search(q, k)[1], top.ids)
            ms = _ms_per_query(store, q, k)
            index = store.client.describe_index(store.collection, "vector").get("index_type", "?")
            size = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())  # Lite's files
        finally:
            store.client.drop_collection(store.collection)
            store.close()
    where = "Milvus server" if os.environ.get(MilvusBackend.URI_ENV) else "Milvus Lite"
    return {"search_1m_vectors": n, "search_1m_synthetic": model, "search_1m_index": f"{where}, {index}",
            "search_1m_recall_at_20": round(recall, 4), "search_1m_ms_per_query": round(ms, 3),
            "search_1m_index_bytes": int(size), "search_1m_build_s": round(build_s, 1)}


def _compressed(real: np.ndarray, n: int, queries: int = 100, k: int = 20, model: str = "noise",
                target: float = 0.95, progress: bool = False) -> dict[str, Any]:
    """The compressed index (:class:`~semcopy_lib.index.compressed.CompressedIndex`) over ``n`` synthetic
    vectors, built in one streamed pass that also finds the exact top-k (nothing holds all n vectors).

    ``nprobe`` and the short list are chosen on ``queries`` tuning queries (the cheapest setting whose
    recall@k reaches ``target``) and reported on as many held-out ones, drawn apart."""
    from tqdm.auto import tqdm

    from semcopy_lib.index.compressed import CompressedIndex, spec_for

    d = real.shape[1]
    tune = synthetic_vectors(real, queries, seed=2, model=model)
    held = synthetic_vectors(real, queries, seed=4, model=model)
    spec = spec_for(n, d)
    with tempfile.TemporaryDirectory(prefix="semcopy-compressed-") as tmp:
        index = CompressedIndex(d, spec, directory=Path(tmp))
        sample = synthetic_vectors(real, min(n, index.train_size()), seed=3, model=model)
        start = time.perf_counter()
        index.train(sample)
        build_s = time.perf_counter() - start  # training, adding and saving, not drawing the vectors
        top = ExactTop(np.concatenate([tune, held]), k)
        for block in tqdm(draw_synthetic(real, n, seed=1, model=model), total=-(-n // 100_000),
                          desc="compressed index", unit="100k", disable=not progress):
            top.update(block)
            start = time.perf_counter()
            index.add(block)
            build_s += time.perf_counter() - start
        start = time.perf_counter()
        index.save()
        build_s += time.perf_counter() - start
        exact_tune, exact_held = top.ids[:queries], top.ids[queries:]
        shortlist, nprobe, tune_recall = index.tune(tune, exact_tune, target)
        held_recall = recall_at_k(index.search(held, k)[1], exact_held)
        ms = _ms_per_query(index, held, k)
        return {"search_1m_vectors": n, "search_1m_synthetic": model, "search_1m_index": f"{spec}, re-ranked (8-bit)",
                "search_1m_nprobe": nprobe, "search_1m_shortlist": shortlist,
                "search_1m_recall_at_20_tuning": round(tune_recall, 4), "search_1m_recall_at_20": round(held_recall, 4),
                "search_1m_ms_per_query": round(ms, 3), "search_1m_index_bytes": index.bytes_in_memory(),
                "search_1m_mapped_bytes": index.bytes_mapped(), "search_1m_build_s": round(build_s, 1)}


def run_speed_bench(images_dir: os.PathLike | str, n_ingest: int = 200, gallery_size: int = 21_000,
                    n_queries: int = 50, million: int = 1_000_000, nlist: int = 2048, progress: bool = False,
                    backend: str = "faiss", encoder_name: str | None = None, encoder_path: str | None = None,
                    synthetic: str = "noise", compressed: bool = False, scale_queries: int = 100) -> dict:
    """The speed benchmark (module doc); returns one flat JSON-able dict. ``backend``: the index backend
    that ingestion and queries use (``milvus``: Milvus Lite, or ``$SEMCOPY_MILVUS_URI``); ``encoder_name``
    and ``encoder_path``: the encoder measured (default :data:`~semcopy_lib.encoders.DEFAULT_ENCODER`);
    ``scale_queries``: the queries that score the index of ``million`` vectors (as many again tune it)."""
    import random

    from semcopy_lib.app import SearchService, index_files
    from semcopy_lib.data import NoImages, compose, scan_images, synth, to_rgb
    from semcopy_lib.data.loading import load_image
    from semcopy_lib.encoders import DEFAULT_ENCODER, create_encoder
    from semcopy_lib.encoders.base import padded_size
    from semcopy_lib.encoders.onnx_runtime import wanted_runtime
    from semcopy_lib.index import GalleryIndex, NewItem
    from semcopy_lib.index.compressed import SQ8_MAX_BYTES, check_room
    from semcopy_lib.index.flat import chosen_ways
    from semcopy_lib.query.clock import STAGES

    files = scan_images(images_dir)
    rng = random.Random(0)
    chosen = rng.sample(files, min(n_ingest, len(files)))
    encoder = create_encoder(encoder_name or DEFAULT_ENCODER, path=encoder_path)
    if backend != "milvus" and (compressed or million * encoder.dim > SQ8_MAX_BYTES):
        check_room(Path(tempfile.gettempdir()), million, encoder.dim)  # before minutes of ingestion
    out: dict[str, Any] = {"machine": machine(), "encoder": encoder.name, "device": str(encoder.device),
                           "runtime": encoder.use_runtime(wanted_runtime()), "precision": encoder.precision(),
                           "backend": backend, "ingest_images": len(chosen)}
    naive_rate, naive_vectors = _naive_ingest(encoder.name, encoder_path, chosen, encoder.device)
    if not naive_vectors:
        raise NoImages(f"{images_dir}: none of the {len(chosen)} image files chosen could be read")
    out["ingest_naive_img_per_s"] = round(naive_rate, 2)
    with tempfile.TemporaryDirectory() as tmp:
        index = GalleryIndex.create(Path(tmp) / "idx", encoder.config.to_dict(), encoder.dim, root=images_dir,
                                    backend=backend)
        start = time.perf_counter()  # untimed in the rate: one-off costs (ONNX export, CUDA kernels loaded)
        warm = _readable(chosen, INGEST_BATCH)
        encoder.embed_gallery(warm, batch_size=INGEST_BATCH)
        # every batch shape at every view's side, so that the timed pass compiles none: a GPU's padded
        # batches load their kernels, OpenVINO on a CPU compiles each shape (its batches are cpu_batch at most)
        if encoder.device.type != "cpu" or encoder.cpu_batch:
            sides = sorted({*(encoder.config.index_sizes or ()), encoder.config.image_size})
            sizes = (sorted({padded_size(n, INGEST_BATCH) for n in range(1, INGEST_BATCH + 1)})
                     if encoder.device.type != "cpu" else range(1, encoder.cpu_batch + 1))
            picture = to_rgb(warm[0])
            for side in sides:
                for size in sizes:
                    encoder.embed([picture] * size, batch_size=INGEST_BATCH, size=side)
        out["ingest_warmup_s"] = round(time.perf_counter() - start, 2)
        start = time.perf_counter()
        index_files(index, chosen, encoder, batch_size=INGEST_BATCH, progress=progress)
        out["ingest_img_per_s"] = round(len(chosen) / (time.perf_counter() - start), 2)
        out["ingest_speedup"] = round(out["ingest_img_per_s"] / out["ingest_naive_img_per_s"], 2)
        records, real = index.image_vectors()
        out["ingest_min_cosine"] = round(min(float(v @ naive_vectors[r.gallery_id]) for r, v in zip(records, real)
                                             if r.gallery_id in naive_vectors), 6)
        extra = max(0, gallery_size - len(index))
        vectors = synthetic_vectors(real, extra, seed=0)
        # each synthetic image shows the picture it was drawn around (its nearest real vector): the pixel
        # checks of its hits cost what a real gallery's do, where every hit has a thumbnail
        shown = index.thumbs([r.gallery_id for r in records])
        nearest = (vectors @ real.T).argmax(axis=1)
        thumbs = {f"synthetic/{i}.png": shown[records[j].gallery_id] for i, j in enumerate(nearest)
                  if records[j].gallery_id in shown}
        index.add([NewItem(f"synthetic/{i}.png", "synthetic", f"s{i}", (0, 0, 1, 1), encoder.name, "", v)
                   for i, v in enumerate(vectors)], thumbs=thumbs)
        index.close()
        service = SearchService(Path(tmp) / "idx", encoder=encoder)
        readable = [f for f in chosen if f.gallery_id in naive_vectors]  # not the files refused at decoding
        queries = []  # every other query a copy (crop + JPEG of a gallery image), the others unseen photos
        for i in range(n_queries + 4):
            path = Path(tmp) / f"q{i}.jpg"
            if i % 2 == 0:
                synth.crop_jpeg(load_image(rng.choice(readable).path, max_side=1024), rng).save(path)
            else:
                compose.random_picture(rng, (800, 600)).save(path, quality=90)
            queries.append(path)
        times: dict[str, list[float]] = {"copy": [], "unseen": []}
        stages: dict[str, dict[str, float]] = {kind: dict.fromkeys(STAGES, 0.0) for kind in times}
        for i, path in enumerate(queries):
            service.clock.reset()
            t = time.perf_counter()
            service.search([path], k=10)
            if i >= 4:  # the first ones warm up
                kind = "copy" if i % 2 == 0 else "unseen"
                times[kind].append((time.perf_counter() - t) * 1000)
                for stage, seconds in service.clock.seconds.items():
                    stages[kind][stage] += seconds * 1000
        both = times["copy"] + times["unseen"]
        out.update(query_gallery_vectors=len(service.index), query_p50_ms=round(statistics.median(both), 1),
                   query_p95_ms=round(float(np.percentile(both, 95)), 1),
                   query_copy_p50_ms=round(statistics.median(times["copy"]), 1),
                   query_unseen_p50_ms=round(statistics.median(times["unseen"]), 1),
                   query_scan=chosen_ways(service.index.backend.count) or "float32 or a GPU: nothing timed",
                   **{f"query_{kind}_stages_ms": {stage: round(ms / max(1, len(times[kind])), 1) for stage, ms in split.items()}
                      for kind, split in stages.items()})
        service.index.close()
    out.update(_million(real, million, nlist, scale_queries, model=synthetic, progress=progress, backend=backend,
                        compressed=compressed))
    return out
