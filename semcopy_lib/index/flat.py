"""Exact top-k over a flat (N, D) matrix of unit vectors, screened in bf16 where the CPU has it.

A search reads the whole matrix: at 21,500 x 1280 float32 (110 MB) that pass, not arithmetic, is the
cost. A bfloat16 copy (half the bytes, and oneDNN's bf16 kernels on CPUs with AVX512-BF16 or AMX) ranks
the candidates; the best ``m`` of them are scored again in float32 and the top ``n`` returned, with
float32 scores. The answer is float32's: for unit vectors a bf16 score is within
:func:`bf16_error` of the float32 one, and the true n-th score is at least the n-th found among the
candidates, so only rows whose bf16 score reaches (that score - the bound) can be in the top ``n``.
When rows outside the candidates do (a gallery's many near-copies of one picture), they are scored in
float32 too; only when they are a large share of all rows is the query scanned whole in float32.
(Rows whose float32 scores tie to the last bit may come in either order: float32 sums differ by a
unit between CPU kernels.) Whether screening pays depends on the CPU and on how many query rows share
the pass (an AMD EPYC with AVX512-BF16 screens a lone row faster than it scans it in float32; an Intel
Xeon with AVX512-BF16 but no AMX screens thirty rows in more time than float32 takes), so by default a
scan times its first searches both ways, for each class of query count, and keeps the faster: both
give the same answer, so the choice moves only time (``docs/benchmarks.md``).

Without screening the CPU computes ``vectors @ q.T`` (N, Q), not ``q @ vectors.T``: the same float32
products, which the MKL in PyTorch's CPU wheels runs faster in that form on AMD CPUs when Q is a
query's few regions (measured in ``docs/benchmarks.md``).

With CUDA present the matrix is copied to the GPU at the first search (4 bytes a dimension: 110 MB at
21,500 x 1280; an index past ``FLAT_MAX`` = 50,000 vectors becomes IVF-SQ8 on the CPU) and scanned
there in float32 (TF32 off, PyTorch's default): exact, no screening needed.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Callable, Literal

import numpy as np

#: Unit roundoffs: bf16 keeps 8 significant bits, float32 24.
BF16_UNIT, F32_UNIT = 2.0**-8, 2.0**-24


def bf16_error(dim: int) -> float:
    """Largest difference between the bf16-screened and the float32 inner product of two unit vectors
    of ``dim`` components (u = :data:`BF16_UNIT`, v = :data:`F32_UNIT`).

    Proof (D = dim <= 2^16, so D v <= u): rounding q and x to bf16 moves sum q_i x_i by at most
    (2u + u^2) sum |q_i x_i| <= 2u + u^2 (Cauchy-Schwarz); summing the exact bf16 products in float32 adds
    <= 1.03 D v; rounding that sum (<= 1 + 3.1u) to bf16 adds <= u + 3.1u^2; a float32 score is within
    1.01 (D + 1) v of the real one. Total <= 3u + 5u^2 + 2.1 (D + 1) v.
    """
    return 3 * BF16_UNIT + 5 * BF16_UNIT**2 + 2.1 * (dim + 1) * F32_UNIT


#: Below this many vectors the float32 pass is cheap enough on its own.
SCREEN_MIN = 4096
#: A query whose widened candidates exceed 1/WIDEN_MAX of the rows is scanned whole in float32.
WIDEN_MAX = 4
#: Searches timed each way (screened, float32) per class of query count before a timed scan chooses.
TIMED_TRIALS = 3

#: What timing chose on this machine, shared by every scan (an index reloaded after a write times
#: nothing again): (rows' bit length, class of query count) -> screen or not.
CHOSEN: dict[tuple[int, int], bool] = {}


def query_class(count: int) -> int:
    """The class of ``count`` query rows whose way a timed scan chooses once: 0 for 1 row, 1 for 2,
    2 for 3-4, 3 for 5-8, ... 6 for more than 32."""
    return min((count - 1).bit_length(), 6)


def chosen_ways(rows: int) -> dict[str, str]:
    """What timing chose (:data:`CHOSEN`) for scans of ``rows`` rows, by query rows ("1", "2", "3-4", ...,
    "33+"): ``"bf16 screen"`` or ``"float32"``; {} where nothing was timed."""
    names = ["1", "2", "3-4", "5-8", "9-16", "17-32", "33+"]
    return {names[c]: "bf16 screen" if way else "float32"
            for (bits, c), way in sorted(CHOSEN.items()) if bits == rows.bit_length()}


def bf16_fast() -> bool:
    """True when this CPU multiplies bf16 matrices natively (AVX512-BF16 or AMX)."""
    import torch

    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def _top_rows(q, vectors, n: int):
    """Float32 top ``n`` of ``q`` (Q, D) against ``vectors`` (N, D) torch tensors -> (scores, rows), (Q, n) each."""
    import torch

    scores, rows = torch.topk(vectors @ q.T, n, dim=0)  # (n, Q)
    return scores.T.contiguous(), rows.T.contiguous()


class FlatScan:
    """Top-k inner products of query rows against ``vectors`` (N, D) float32, shared without copying.

    Args:
        vectors: (N, D) float32 unit rows (e.g. FAISS's own storage); must not change while in use.
        screen: screen in bf16 on the CPU (True), never (False), or ``"timed"``: each class of query
            count (1, 2, 3-4, ..., over 32 rows) is searched :data:`TIMED_TRIALS` times each way, then
            the way with the lower median time is kept (:data:`CHOSEN`). Default: ``"timed"`` when the
            CPU has native bf16 and N >= :data:`SCREEN_MIN`, else False.
        device: where the scan runs (default: CUDA when present, else the CPU); elsewhere than the CPU
            a float32 copy of ``vectors`` is kept there.
        clock: the timer of ``"timed"`` (seconds).
    """

    def __init__(self, vectors: np.ndarray, screen: bool | Literal["timed"] | None = None,
                 device: str | None = None, clock: Callable[[], float] = time.perf_counter):
        import torch

        self.array = vectors
        self.vectors = torch.from_numpy(vectors)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        n = len(vectors)
        self.screen = ("timed" if n >= SCREEN_MIN and bf16_fast() else False) if screen is None else screen
        self._clock = clock
        self._trials: dict[tuple[int, int], dict[bool, list[float]]] = {}  # key of CHOSEN -> seconds each way
        self._lock = threading.Lock()
        self._coarse = None  # the bf16 copy, made at the first screened search
        self._on_device = None  # the float32 copy on ``device`` (not the CPU), made at the first search
        self.widened = 0  # queries whose bf16 candidates had to be widened to vouch for the answer
        self.rescans = 0  # queries whose near ties left no shortcut (all rows searched in float32)

    def search(self, queries: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(Q, D) float32 -> (scores (Q, n) float32, row numbers (Q, n)), best first; n <= N."""
        import torch

        with torch.inference_mode():
            # a writable C-contiguous float32 copy only when needed (np.frombuffer rows are read-only)
            q = torch.from_numpy(np.require(queries, np.float32, ["C", "W"]))
            if self.device.type != "cpu":
                if self._on_device is None:
                    self._on_device = self.vectors.to(self.device)
                scores, rows = torch.topk(q.to(self.device) @ self._on_device.T, n, dim=1)
                return scores.cpu().numpy(), rows.cpu().numpy()
            m = min(len(self.vectors), 2 * n + 64)  # deep enough that most queries need no more
            if m >= len(self.vectors) or self.screen != "timed":
                return self._run(bool(self.screen) and m < len(self.vectors), q, n, m)
            key = (len(self.vectors).bit_length(), query_class(len(q)))
            way = CHOSEN.get(key)
            if way is not None:
                return self._run(way, q, n, m)
            with self._lock:
                times = self._trials.setdefault(key, {True: [], False: []})
                way = len(times[True]) <= len(times[False])  # the two ways in turn, screened first
            if way:
                self._table()  # made once, before the clock starts
            start = self._clock()
            found = self._run(way, q, n, m)
            with self._lock:
                times[way].append(self._clock() - start)
                if key not in CHOSEN and min(len(t) for t in times.values()) >= TIMED_TRIALS:
                    CHOSEN[key] = statistics.median(times[True]) < statistics.median(times[False])
                    if not any(screens for (bits, _), screens in CHOSEN.items() if bits == key[0]):
                        self._coarse = None  # float32 for every query count chosen so far: 2 bytes a number freed
            return found

    def _table(self):
        """The (N, D) bf16 copy of the rows, made when first needed (read once: a timed scan that keeps
        float32 drops it, maybe meanwhile)."""
        import torch

        table = self._coarse
        if table is None:
            table = self._coarse = self.vectors.to(torch.bfloat16)
        return table

    def _run(self, screen: bool, q, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
        """The top ``n`` of ``q`` the chosen way: screened in bf16 (the best ``m`` first) or float32 alone."""
        return self._screened(q, n, m) if screen else self._plain(q, n)

    def _plain(self, q, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Float32 top ``n`` of the (Q, D) torch queries ``q`` over every row."""
        scores, rows = _top_rows(q, self.vectors, n)
        return scores.numpy(), rows.numpy()

    def _screened(self, q, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
        """Float32 top ``n`` of ``q`` (Q, D), the rows ranked first in bf16 (the best ``m``, widened to
        every row the bound leaves in)."""
        import torch

        with torch.inference_mode():
            screened = (q.to(torch.bfloat16) @ self._table().T).float()  # (Q, N)
            coarse, cand = torch.topk(screened, m, dim=1)  # (Q, m)
            # each candidate row read once, however many queries share it (a query's regions mostly do)
            rows, where = torch.unique(cand, return_inverse=True)
            exact = torch.gather(q @ self.vectors[rows].T, 1, where)  # (Q, m)
            scores, order = torch.topk(exact, n, dim=1)
            rows = torch.gather(cand, 1, order)
            # the true n-th score is at least the n-th found, so a row can only belong to the top n if
            # its bf16 score reaches floor = (that score - bf16_error): the rows to score in float32
            floor = scores[:, -1] - bf16_error(self.vectors.shape[1])
            for i in (coarse[:, -1] >= floor).nonzero().flatten().tolist():
                keep = (screened[i] >= floor[i]).nonzero().flatten()
                if len(keep) > len(self.vectors) // WIDEN_MAX:  # near ties everywhere: scan it all
                    self.rescans += 1
                    best, found = _top_rows(q[i:i + 1], self.vectors, n)
                    scores[i], rows[i] = best[0], found[0]
                    continue
                self.widened += 1
                best, order = torch.topk(self.vectors[keep] @ q[i], n)
                scores[i], rows[i] = best, keep[order]
            return scores.numpy(), rows.numpy()


class ExactTop:
    """Exact inner-product top-k of queries (Q, D) over vectors seen a chunk at a time: the truth an
    approximate index is scored against, when nothing may hold all the vectors at once.

    ``ids`` are (Q, k), best first: the positions of the vectors in the order seen, or the ids given
    with each chunk."""

    def __init__(self, q: np.ndarray, k: int):
        self.q, self.k, self.seen = q, k, 0
        self.scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        self.ids = np.zeros((len(q), k), dtype=np.int64)

    def update(self, block: np.ndarray, ids: np.ndarray | None = None) -> None:
        """block: (n, D) vectors; ids: their (n,) ids (default: their positions)."""
        ids = np.arange(self.seen, self.seen + len(block)) if ids is None else np.asarray(ids, dtype=np.int64)
        cand = np.concatenate([self.scores, self.q @ block.T], axis=1)
        every = np.concatenate([self.ids, np.broadcast_to(ids, (len(self.q), len(block)))], axis=1)
        top = np.argsort(-cand, axis=1)[:, :self.k]
        self.scores, self.ids = np.take_along_axis(cand, top, 1), np.take_along_axis(every, top, 1)
        self.seen += len(block)


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each row of ``exact`` (Q, k) ids that the same row of ``found`` (Q, >= k) holds."""
    k = exact.shape[1]
    return float(np.mean([len(set(a.tolist()) & set(b.tolist())) / k for a, b in zip(found, exact)]))
