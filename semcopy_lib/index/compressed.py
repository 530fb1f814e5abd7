"""A compressed index for galleries too big for one byte a dimension in memory (tens of millions).

Two parts, after FAISS's ``IndexRefine`` recipe, built in a stream so that memory stays bounded:

- a short list from ``PCA{d},IVF{nlist},PQ{m}x4fs`` (FAISS, in memory: ``m / 2`` bytes a vector), over L2
  distances: the vectors are unit length, so L2 ranks as inner product does, and PCA centres them (a
  centred inner product would not);
- the short list re-ranked by inner product with the stored vectors at 8 bits a dimension
  (``faiss.ScalarQuantizer``), in a flat file that is memory-mapped, not read: the operating system keeps
  the pages a search touches.

FAISS's own ``IndexRefine`` keeps the re-ranking codes in memory while it is built (13 GB at 10M x 1280),
which is what this avoids.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

SHORTLIST_FILE = "shortlist.faiss"
CODES_FILE = "rerank.sq8"
QUANTIZER_FILE = "rerank.sq8.faiss"
META_FILE = "compressed.json"

#: Past this many bytes of 8-bit vectors (N x D), ``IVF,SQ8`` in memory gives way to this index.
SQ8_MAX_BYTES = 4 * 2**30
#: Dimensions kept by the PCA of the short list, and the PQ sub-quantizers (4 bits each) over them.
PCA_DIM, PQ_M = 256, 128


def spec_for(n: int, dim: int) -> str:
    """The short-list index for ``n`` vectors: ``4 sqrt(n)`` inverted lists, at most 4096 (training and
    assigning more costs more on a few cores than the lists it saves to scan)."""
    nlist = int(max(16, min(4096, 4 * np.sqrt(n))))
    d = min(PCA_DIM, dim)
    return f"PCA{d},IVF{nlist},PQ{min(PQ_M, d // 2)}x4fs"


def check_room(directory: Path, n: int, dim: int) -> None:
    """Raise ValueError (one line naming ``directory``) when its disk cannot hold ``n`` re-ranking codes."""
    import shutil

    need, free = n * dim, shutil.disk_usage(directory).free
    if free < need * 1.05:
        raise ValueError(f"{directory}: {free / 1e9:.1f} GB free, the re-ranking file of {n:,} vectors needs "
                         f"{need / 1e9:.1f} GB (set TMPDIR to a larger disk)")


class CompressedIndex:
    """Inner-product top-k over unit vectors with positional ids (0, 1, ... in the order added).

    ``spec``: the FAISS factory string of the short-list index; ``shortlist``: how many candidates
    each query re-ranks; ``nprobe``: inverted lists visited.
    """

    #: Short-list lengths tried by a benchmark, cheapest first.
    SHORTLISTS = (250, 500, 1000, 2000, 5000)
    #: Codes converted to float32 at a time when re-ranking: 1.3 MB, which stays in cache.
    RERANK_ROWS = 256

    def __init__(self, dim: int, spec: str, shortlist: int = 1000, directory: Path | None = None):
        import faiss

        self.dim, self.spec, self.shortlist = dim, spec, shortlist
        self.index = faiss.index_factory(dim, spec, faiss.METRIC_L2)
        self.sq = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        self.directory = Path(directory) if directory is not None else None
        self._codes_file = None  # open for appending while built
        self._codes: np.ndarray | None = None  # (N, dim) uint8, memory-mapped
        self.count = 0

    # -- building ----------------------------------------------------------------------------
    def train_size(self) -> int:
        """Vectors to train on: 40 per inverted list (FAISS warns below 39), and the PCA's own need."""
        import faiss

        return max(40 * faiss.extract_index_ivf(self.index).nlist, 20 * self.dim)

    def train(self, sample: np.ndarray) -> None:
        """sample: (n, dim) float32 unit vectors (a few times nlist of them)."""
        sample = np.ascontiguousarray(sample, dtype=np.float32)
        self.index.train(sample)
        self.sq.train(sample)

    def add(self, vectors: np.ndarray) -> None:
        """Append (n, dim) float32 unit vectors; their ids follow the ones already added."""
        if self.directory is None:
            raise ValueError("a compressed index writes its re-ranking codes to a directory: give one")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.index.add(vectors)
        if self._codes_file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            # a new index replaces codes left in the directory; a saved one grows its own
            self._codes_file = open(self.directory / CODES_FILE, "ab" if self.count else "wb")
        self._codes_file.write(self.sq.sa_encode(vectors).tobytes())
        self.count += len(vectors)
        self._codes = None

    def save(self) -> None:
        """Write the short-list index, the quantizer and the metadata beside the codes file."""
        import faiss

        if self._codes_file is not None:
            self._codes_file.close()
            self._codes_file = None
        faiss.write_index(self.index, str(self.directory / SHORTLIST_FILE))
        faiss.write_index(self.sq, str(self.directory / QUANTIZER_FILE))
        meta = {"dim": self.dim, "spec": self.spec, "shortlist": self.shortlist, "count": self.count,
                "nprobe": self.nprobe}
        (self.directory / META_FILE).write_text(json.dumps(meta))

    @classmethod
    def load(cls, directory: Path) -> "CompressedIndex":
        """The index saved in ``directory``: the short list read into memory, the codes mapped."""
        import faiss

        directory = Path(directory)
        meta = json.loads((directory / META_FILE).read_text())
        out = cls.__new__(cls)
        out.dim, out.spec, out.shortlist, out.count = meta["dim"], meta["spec"], meta["shortlist"], meta["count"]
        out.directory, out._codes_file, out._codes = directory, None, None
        out.index = faiss.read_index(str(directory / SHORTLIST_FILE))
        out.sq = faiss.read_index(str(directory / QUANTIZER_FILE))
        size = (directory / CODES_FILE).stat().st_size
        if size != out.count * out.dim:
            raise ValueError(f"{directory / CODES_FILE}: {size} bytes, {out.count} vectors of {out.dim} expected")
        out.nprobe = meta["nprobe"]
        return out

    # -- searching ---------------------------------------------------------------------------
    @property
    def nprobe(self) -> int:
        import faiss

        return int(faiss.extract_index_ivf(self.index).nprobe)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        import faiss

        faiss.extract_index_ivf(self.index).nprobe = int(value)

    def _mapped(self) -> np.ndarray:
        if self._codes is None:
            if self._codes_file is not None:
                self._codes_file.flush()
            self._codes = np.memmap(self.directory / CODES_FILE, dtype=np.uint8, mode="r",
                                    shape=(self.count, self.dim))
        return self._codes

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """queries: (Q, dim) -> (scores (Q, k) float32, ids (Q, k) int64), best first; -1 = none.

        Scores are inner products with the 8-bit vectors: off float32's by at most ``|q| . vdiff / 510``
        (half a quantisation step a dimension; about 1e-3 for this project's embeddings)."""
        import faiss

        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        threads = faiss.omp_get_max_threads()
        if len(queries) == 1:  # one query runs on one thread; the others would spin and slow numpy down
            faiss.omp_set_num_threads(1)
        try:
            _, cand = self.index.search(queries, max(k, self.shortlist))
        finally:
            faiss.omp_set_num_threads(threads)
        codes = self._mapped()
        vmin, vdiff = self._range()
        # a code decodes to vmin + (code + 0.5) * step, so q . x is one product with the codes plus q . offset
        step = vdiff / 255
        offset = vmin + 0.5 * step
        scores = np.full((len(queries), k), -np.finfo(np.float32).max, np.float32)
        ids = np.full((len(queries), k), -1, np.int64)
        buf = np.empty((self.RERANK_ROWS, self.dim), np.float32)
        for row, (q, c) in enumerate(zip(queries, cand)):
            c = np.sort(c[c >= 0])  # in file order: the pages are read in one sweep
            if not len(c):
                continue
            w = q * step
            gathered, s = codes[c], np.empty(len(c), np.float32)
            for i in range(0, len(c), self.RERANK_ROWS):  # converted a cache-sized block at a time
                m = min(self.RERANK_ROWS, len(c) - i)
                np.copyto(buf[:m], gathered[i:i + m])
                s[i:i + m] = buf[:m] @ w
            s += float(q @ offset)
            top = np.argsort(-s)[:k]
            scores[row, :len(top)], ids[row, :len(top)] = s[top], c[top]
        return scores, ids

    def _range(self) -> tuple[np.ndarray, np.ndarray]:
        """The 8-bit quantizer's per-dimension (vmin (dim,), vdiff (dim,)) of ``QT_8bit``."""
        import faiss

        trained = faiss.vector_to_array(self.sq.sq.trained)
        return trained[:self.dim], trained[self.dim:]

    def bytes_in_memory(self) -> int:
        """Bytes of what a search keeps in memory: the short-list index (PCA, centroids, PQ codes, ids)."""
        import faiss

        return int(faiss.serialize_index(self.index).nbytes) + int(faiss.serialize_index(self.sq).nbytes)

    def bytes_mapped(self) -> int:
        """Bytes of the memory-mapped re-ranking codes (``count * dim``)."""
        return int(os.path.getsize(self.directory / CODES_FILE)) if self.directory else 0
