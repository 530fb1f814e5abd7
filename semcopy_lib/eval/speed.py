"""``semcopy bench speed``: ingestion throughput, warm query latency, and search over a million vectors.

Measured side by side in one run on whatever machine runs it:

- ``ingest_img_per_s``: :func:`~semcopy_lib.app.index_files` (decoding and resizing in threads beside inference,
  batches; on a CPU, ONNX Runtime, or OpenVINO in mixed bf16 with ``SEMCOPY_RUNTIME=openvino``: see
  ``runtime`` and ``precision``) over real image files, every gallery
  view included; both ingestions are warmed up first, untimed (one batch here, one image for the naive
  loop): ``ingest_warmup_s`` is the time of that batch, one-off costs included (ONNX export on CPU; on
  CUDA, kernels loaded at their first call, which can take longer than many later batches);
- ``ingest_naive_img_per_s``: the same files and views with the same weights on the same device, one
  image at a time, contiguous fp32 in eager PyTorch, decoding in line; ``ingest_min_cosine``: the
  numerics check, the smallest cosine between an image's vector from the optimised path and the naive
  fp32 one;
- ``query_p50_ms`` / ``query_p95_ms``: a warm :class:`~semcopy_lib.app.SearchService` answering one
  photo at a time, end to end (decode, whole image, then layout analysis, subjects and windows when it
  is not a copy, search) over a gallery grown to ``gallery_size`` vectors with synthetic neighbours of
  the real ones; half the photos are copies (crop + JPEG of a gallery image), half unseen pictures
  (which go through the whole region path), also reported apart; ``query_copy_stages_ms`` and
  ``query_unseen_stages_ms``: the mean milliseconds a query of each half spends in each stage of
  :data:`~semcopy_lib.query.clock.STAGES`;
- ``search_1m_*``: ``million`` synthetic unit vectors of the encoder's dimension, drawn around the real
  gallery vectors (so that they cluster as embeddings do), in a FAISS ``IVF{nlist},SQ8`` index: recall@20
  against exact search on 100 queries, milliseconds per single query at the smallest ``nprobe`` reaching
  recall 0.95, and the serialised index size; with CUDA present also ``search_1m_gpu_flat_*``: the same
  queries scanned exactly on the GPU (:class:`~semcopy_lib.index.flat.FlatScan`, float32).
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: Noise around a real vector that makes a synthetic one (per dimension, before normalising).
SYNTH_NOISE = 0.02
#: Images per batch of the optimised ingestion (``index_files``' default).
INGEST_BATCH = 32
#: nprobe values tried for the million-vector index, smallest first.
NPROBES = (8, 16, 32, 64, 128, 256)


def machine() -> str:
    """CPU (and GPU) of this machine, in words."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{cpu}, {os.cpu_count()} CPU threads, torch {torch.__version__}{gpu}"


def synthetic_vectors(real: np.ndarray, n: int, seed: int = 0, chunk: int = 100_000) -> np.ndarray:
    """(n, D) float32 unit vectors, each a real vector plus Gaussian noise, renormalised."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        block = real[rng.integers(0, len(real), m)] + rng.normal(0, SYNTH_NOISE, (m, real.shape[1])).astype(np.float32)
        out[start:start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
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
            images.append(load_image(f.path, max_side=DECODE_MAX_SIDE, keep_alpha=True))
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
                image = load_image(f.path, max_side=DECODE_MAX_SIDE, keep_alpha=True)  # as index_files decodes
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
    recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, exact)]))
    t = time.perf_counter()
    for row in q:
        scan.search(row[None], k)
    ms = (time.perf_counter() - t) / len(q) * 1000
    return {"search_1m_gpu_flat_recall_at_20": round(recall, 4), "search_1m_gpu_flat_ms_per_query": round(ms, 3),
            "search_1m_gpu_flat_bytes": int(base.nbytes)}


def _million(real: np.ndarray, n: int, nlist: int, queries: int = 100, k: int = 20) -> dict[str, Any]:
    import faiss

    base = synthetic_vectors(real, n, seed=1)
    q = synthetic_vectors(real, queries, seed=2)
    exact = np.zeros((queries, k), dtype=np.int64)
    best = np.full((queries, k), -np.inf, dtype=np.float32)
    for start in range(0, n, 200_000):  # exact top-k in blocks
        scores = q @ base[start:start + 200_000].T
        cand = np.concatenate([best, scores], axis=1)
        ids = np.concatenate([exact, np.arange(start, start + scores.shape[1])[None].repeat(queries, 0)], axis=1)
        top = np.argsort(-cand, axis=1)[:, :k]
        best, exact = np.take_along_axis(cand, top, 1), np.take_along_axis(ids, top, 1)
    start = time.perf_counter()
    index = faiss.index_factory(base.shape[1], f"IVF{nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(3)
    index.train(base[rng.choice(n, min(n, 40 * nlist), replace=False)])
    for s in range(0, n, 100_000):
        index.add(base[s:s + 100_000])
    build_s = time.perf_counter() - start
    gpu = _gpu_flat(base, q, exact) if torch.cuda.is_available() else {}
    del base
    size = int(faiss.serialize_index(index).nbytes)
    result = {}
    for nprobe in NPROBES:
        if nprobe > nlist:
            break
        index.nprobe = nprobe
        _, found = index.search(q, k)
        recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, exact)]))
        t = time.perf_counter()
        for row in q:
            index.search(row[None], k)
        ms = (time.perf_counter() - t) / queries * 1000
        result = {"search_1m_recall_at_20": round(recall, 4), "search_1m_ms_per_query": round(ms, 3),
                  "search_1m_nprobe": nprobe}
        if recall >= 0.95:
            break
    result.update(gpu)
    result.update(search_1m_index_bytes=size, search_1m_vectors=n, search_1m_index=f"IVF{nlist},SQ8",
                  search_1m_build_s=round(build_s, 1))
    return result


def run_speed_bench(images_dir: os.PathLike | str, n_ingest: int = 200, gallery_size: int = 21_000,
                    n_queries: int = 50, million: int = 1_000_000, nlist: int = 2048, progress: bool = False,
                    backend: str = "faiss", encoder_name: str | None = None, encoder_path: str | None = None) -> dict:
    """The speed benchmark (module doc); returns one flat JSON-able dict. ``backend``: the index backend
    that ingestion and queries use (``milvus``: Milvus Lite, or ``$SEMCOPY_MILVUS_URI``); ``encoder_name``
    and ``encoder_path``: the encoder measured (default :data:`~semcopy_lib.encoders.DEFAULT_ENCODER`)."""
    import random

    from semcopy_lib.app import SearchService, index_files
    from semcopy_lib.data import compose, scan_folder, synth
    from semcopy_lib.data.loading import load_image
    from semcopy_lib.encoders import DEFAULT_ENCODER, create_encoder
    from semcopy_lib.encoders.onnx_runtime import wanted_runtime
    from semcopy_lib.index import GalleryIndex, NewItem
    from semcopy_lib.query.clock import STAGES

    files = scan_folder(images_dir)
    rng = random.Random(0)
    chosen = rng.sample(files, min(n_ingest, len(files)))
    encoder = create_encoder(encoder_name or DEFAULT_ENCODER, path=encoder_path)
    out: dict[str, Any] = {"machine": machine(), "encoder": encoder.name, "device": str(encoder.device),
                           "runtime": encoder.use_runtime(wanted_runtime()), "precision": encoder.precision(),
                           "backend": backend, "ingest_images": len(chosen)}
    naive_rate, naive_vectors = _naive_ingest(encoder.name, encoder_path, chosen, encoder.device)
    out["ingest_naive_img_per_s"] = round(naive_rate, 2)
    with tempfile.TemporaryDirectory() as tmp:
        index = GalleryIndex.create(Path(tmp) / "idx", encoder.config.to_dict(), encoder.dim, root=images_dir,
                                    backend=backend)
        start = time.perf_counter()  # untimed in the rate: one-off costs (ONNX export, CUDA kernels loaded)
        encoder.embed_gallery(_readable(chosen, INGEST_BATCH), batch_size=INGEST_BATCH)
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
        index.add([NewItem(f"synthetic/{i}.png", "synthetic", f"s{i}", (0, 0, 1, 1), encoder.name, "", v)
                   for i, v in enumerate(vectors)])
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
                   **{f"query_{kind}_stages_ms": {stage: round(ms / max(1, len(times[kind])), 1) for stage, ms in split.items()}
                      for kind, split in stages.items()})
        service.index.close()
    out.update(_million(real, million, nlist))
    return out
