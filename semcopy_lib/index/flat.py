"""Exact top-k over a flat (N, D) matrix of unit vectors, screened in bf16 where the CPU has it.

A search reads the whole matrix: at 21,500 x 1280 float32 (110 MB) that pass, not arithmetic, is the
cost. A bfloat16 copy (half the bytes, and oneDNN's bf16 kernels on CPUs with AVX512-BF16 or AMX) ranks
the candidates; the best ``m`` of them are scored again in float32 and the top ``n`` returned, with
float32 scores. The answer is float32's: for unit vectors a bf16 score is within ``BF16_ERROR`` of the
float32 one (2^-8 from the inputs: each rounds by at most 2^-9 of itself, and sum |q_i x_i| <= 1; 2^-9
from the product, which comes back rounded to bf16; 2^-13 for float32 sums of up to 2,048 terms), so any
vector outside the candidates scores at most (m-th candidate's bf16 score + BF16_ERROR); a query whose
n-th exact score is not above that bound is searched again in float32. (Rows whose float32 scores tie
to the last bit may come in either order: float32 sums differ by a unit between CPU kernels.)
On 2 cores (AVX512-BF16), 30 query vectors against 21,500: 7.4 ms screened, 25.8 ms float32.

With CUDA present the matrix is copied to the GPU at the first search (4 bytes a dimension: 110 MB at
21,500 x 1280; an index past ``FLAT_MAX`` = 50,000 vectors becomes IVF-SQ8 on the CPU) and scanned
there in float32 (TF32 off, PyTorch's default): exact, no screening needed.
"""

from __future__ import annotations

import numpy as np

#: Largest difference between a bf16 and a float32 inner product of two unit vectors.
BF16_ERROR = 2.0**-8 + 2.0**-9 + 2.0**-13
#: Below this many vectors the float32 pass is cheap enough on its own.
SCREEN_MIN = 4096


def bf16_fast() -> bool:
    """True when this CPU multiplies bf16 matrices natively (AVX512-BF16 or AMX)."""
    import torch

    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


class FlatScan:
    """Top-k inner products of query rows against ``vectors`` (N, D) float32, shared without copying.

    Args:
        vectors: (N, D) float32 unit rows (e.g. FAISS's own storage); must not change while in use.
        screen: screen in bf16 on the CPU (default: when the CPU has native bf16 and N >= :data:`SCREEN_MIN`).
        device: where the scan runs (default: CUDA when present, else the CPU); elsewhere than the CPU
            a float32 copy of ``vectors`` is kept there.
    """

    def __init__(self, vectors: np.ndarray, screen: bool | None = None, device: str | None = None):
        import torch

        self.array = vectors
        self.vectors = torch.from_numpy(vectors)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        n = len(vectors)
        self.screen = (n >= SCREEN_MIN and bf16_fast()) if screen is None else screen
        self._coarse = None  # the bf16 copy, made at the first screened search
        self._on_device = None  # the float32 copy on ``device`` (not the CPU), made at the first search
        self.rescans = 0  # queries whose screening could not vouch for its answer (searched in float32)

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
            m = min(len(self.vectors), max(2 * n, n + 32))
            if not self.screen or m >= len(self.vectors):
                scores, rows = torch.topk(q @ self.vectors.T, n, dim=1)
                return scores.numpy(), rows.numpy()
            if self._coarse is None:
                self._coarse = self.vectors.to(torch.bfloat16)
            coarse, cand = torch.topk((q.to(torch.bfloat16) @ self._coarse.T).float(), m, dim=1)  # (Q, m)
            exact = torch.einsum("qd,qmd->qm", q, self.vectors[cand])
            scores, order = torch.topk(exact, n, dim=1)
            rows = torch.gather(cand, 1, order)
            # anything outside the candidates scores <= coarse[:, -1] + BF16_ERROR in float32
            unsure = (scores[:, -1] < coarse[:, -1] + BF16_ERROR).nonzero().flatten()
            if len(unsure):
                self.rescans += len(unsure)
                scores[unsure], rows[unsure] = torch.topk(q[unsure] @ self.vectors.T, n, dim=1)
            return scores.numpy(), rows.numpy()
