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

from semcopy_lib.index.backends import BACKENDS, VectorBackend
from semcopy_lib.index.flat import ExactTop, recall_at_k

SHORTLIST_FILE = "shortlist.faiss"
CODES_FILE = "rerank.sq8"
QUANTIZER_FILE = "rerank.sq8.faiss"
META_FILE = "compressed.json"

#: Past this many bytes of 8-bit vectors (N x D), ``IVF,SQ8`` in memory gives way to this index.
SQ8_MAX_BYTES = 4 * 2**30
#: Dimensions kept by the PCA of the short list, and the PQ sub-quantizers (4 bits each) over them.
PCA_DIM, PQ_M = 256, 128
#: nprobe values tried when an approximate index is tuned, smallest first.
NPROBES = (8, 16, 32, 64, 128, 256)


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
            # a new index replaces codes left in the directory; a saved one grows its own, from its last
            # saved vector on (codes appended but never saved, by a process that died, are dropped)
            self._codes_file = open(self.directory / CODES_FILE, "r+b" if self.count else "wb")
            self._codes_file.truncate(self.count * self.dim)
            self._codes_file.seek(self.count * self.dim)
        self._codes_file.write(self.sq.sa_encode(vectors).tobytes())
        self.count += len(vectors)
        self._codes = None

    def save(self) -> None:
        """Write the short-list index, the quantizer and the metadata beside the codes file."""
        import faiss

        if self._codes_file is not None:
            self._codes_file.close()
            self._codes_file = None
        else:
            self.directory.mkdir(parents=True, exist_ok=True)
            (self.directory / CODES_FILE).touch()
        # each file written whole, then renamed: a reader never sees half of one
        for name, index in ((SHORTLIST_FILE, self.index), (QUANTIZER_FILE, self.sq)):
            faiss.write_index(index, str(self.directory / f"{name}.tmp"))
            os.replace(self.directory / f"{name}.tmp", self.directory / name)
        meta = {"dim": self.dim, "spec": self.spec, "shortlist": self.shortlist, "count": self.count,
                "nprobe": self.nprobe}
        (self.directory / f"{META_FILE}.tmp").write_text(json.dumps(meta))
        os.replace(self.directory / f"{META_FILE}.tmp", self.directory / META_FILE)

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
        if size < out.count * out.dim:  # longer is a writer's unsaved tail, which is not read
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

    def search(self, queries: np.ndarray, k: int, live: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """queries: (Q, dim) -> (scores (Q, k) float32, positions (Q, k) int64), best first; -1 = none.

        ``live``: (N,) bool, False for positions that must not be returned (removed vectors).
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
            c = np.sort(c[(c >= 0) & (c < self.count)])  # in file order: the pages are read in one sweep
            if live is not None:
                c = c[live[c]]
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

    def tune(self, queries: np.ndarray, exact: np.ndarray, target: float = 0.95) -> tuple[int, int, float]:
        """Set the cheapest short list, then nprobe, whose recall@k of ``queries`` (Q, dim) against
        ``exact`` (Q, k) positions reaches ``target`` (the longest and widest when none does).
        Returns (shortlist, nprobe, recall)."""
        k, recall = exact.shape[1], 0.0
        for shortlist in self.SHORTLISTS:  # cheapest first: the short list costs more than the probes
            for nprobe in NPROBES:
                self.shortlist, self.nprobe = shortlist, nprobe
                recall = recall_at_k(self.search(queries, k)[1], exact)
                if recall >= target:
                    return shortlist, nprobe, recall
        return self.shortlist, self.nprobe, recall

    def decode(self, positions: np.ndarray) -> np.ndarray:
        """(n,) positions -> (n, dim) float32: the stored vectors as their 8-bit codes give them back."""
        codes = np.ascontiguousarray(self._mapped()[np.asarray(positions, dtype=np.int64)])
        return self.sq.sa_decode(codes).reshape(len(codes), self.dim)

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


class CompressedBackend(VectorBackend):
    """A gallery index's vectors in a :class:`CompressedIndex` (the folder ``vectors.compressed``), with the
    index's own int64 ids: ``ids.npy`` maps each position to its id, -1 once removed (a removed
    vector's codes stay in the file until the next rebuild).

    A gallery gets this backend past :data:`SQ8_MAX_BYTES` (:meth:`GalleryIndex.optimise
    <semcopy_lib.index.directory.GalleryIndex.optimise>`), built from SQLite by :meth:`rebuild`, which
    also tunes the short list and nprobe. Scores are the 8-bit vectors' (:meth:`CompressedIndex.search`).
    """

    FILE = "vectors.compressed"
    IDS_FILE = "ids.npy"
    #: Made from stored vectors by :meth:`rebuild`, never empty: ``GalleryIndex.create`` refuses it.
    CREATABLE = False
    #: Stored vectors that tune (and as many again that score) the short list and nprobe of a rebuild.
    TUNING_QUERIES = 100
    #: Fewer vectors than this do not train the short list's quantizers (and fit in memory anyway).
    MIN_VECTORS = 1000

    def __init__(self, dim: int, path: Path | None = None, name: str | None = None,
                 index: CompressedIndex | None = None, ids: np.ndarray | None = None):
        super().__init__(dim)
        if index is None or ids is None:
            raise ValueError("a compressed index is made from stored vectors: CompressedBackend.rebuild")
        self.index, self.ids = index, ids  # the folder is ``index.directory``
        self._live = int((ids >= 0).sum())
        self.report: dict = {}
        self._order: np.ndarray | None = None  # argsort of ids, for lookups by id
        self._mask: np.ndarray | None = None  # (N,) ids >= 0, once some were removed

    # -- building ----------------------------------------------------------------------------
    @classmethod
    def rebuild(cls, dim: int, path: Path, chunks, n: int, target: float = 0.95, seed: int = 0,
                progress: bool = False) -> "CompressedBackend":
        """The index of the ``n`` vectors that ``chunks()`` yields as (ids (m,), vectors (m, dim)) chunks,
        in two passes (nothing holds them all): a random sample trains it, then every vector is added
        while the exact top-20 of 2 x :data:`TUNING_QUERIES` sampled stored vectors is kept; the short
        list and nprobe are the cheapest whose recall@20 on half of them reaches ``target``, and the
        other half's recall is reported (``self.report``). Written to a new folder, then renamed over
        ``path``."""
        import shutil

        from tqdm.auto import tqdm

        if n < cls.MIN_VECTORS:
            raise ValueError(f"{path}: a compressed index needs at least {cls.MIN_VECTORS} vectors, not {n}")
        rng = np.random.default_rng(seed)
        fresh = Path(f"{path}.new")
        shutil.rmtree(fresh, ignore_errors=True)
        index = CompressedIndex(dim, spec_for(n, dim), directory=fresh)
        # a sample of the stored vectors: the training set, and the queries that tune the index
        want = min(n, index.train_size())
        share, picked = want / max(n, 1), []
        for _, vectors in chunks():
            picked.append(vectors[rng.random(len(vectors)) < share])
        sample = np.concatenate(picked) if picked else np.zeros((0, dim), np.float32)
        index.train(sample)
        queries = sample[rng.choice(len(sample), min(len(sample), 2 * cls.TUNING_QUERIES), replace=False)]
        k = min(20, n)
        top = ExactTop(queries, k)
        ids = []
        with tqdm(total=n, desc="compressed index", unit="vec", disable=not progress) as bar:
            for chunk_ids, vectors in chunks():
                top.update(vectors, chunk_ids)
                index.add(vectors)
                ids.append(np.asarray(chunk_ids, dtype=np.int64))
                bar.update(len(vectors))
        backend = cls(dim, path=fresh, index=index, ids=np.concatenate(ids) if ids else np.zeros(0, np.int64))
        half = len(queries) // 2
        shortlist, nprobe, tuned = index.tune(queries[:half], backend._positions(top.ids[:half]), target)
        held = recall_at_k(backend.search(queries[half:], k)[1], top.ids[half:])
        backend.report = {"index": f"{index.spec}, 8-bit re-rank", "shortlist": shortlist, "nprobe": nprobe,
                          "recall_at_k_tuning": round(tuned, 4), "recall_at_k": round(held, 4), "k": k,
                          "vectors": n, "bytes": index.bytes_in_memory(), "mapped_bytes": index.bytes_mapped()}
        backend.save(fresh)
        old = Path(f"{path}.old")
        shutil.rmtree(old, ignore_errors=True)
        if Path(path).exists():
            os.replace(path, old)  # a process that maps the old codes keeps reading them
        os.replace(fresh, path)
        shutil.rmtree(old, ignore_errors=True)
        index.directory = Path(path)
        index._codes = None
        return backend

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._writable()
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if not len(ids):
            return
        self.index.add(vectors)
        self.ids = np.concatenate([self.ids, ids])
        self._live += len(ids)
        self._order = self._mask = None

    def _positions(self, ids: np.ndarray) -> np.ndarray:
        """Positions of ``ids`` (any shape) among the live ones; -1 where an id is not there."""
        if self._order is None:
            self._order = np.argsort(self.ids, kind="stable")
        ids = np.asarray(ids, dtype=np.int64)
        if not len(self.ids):
            return np.full(ids.shape, -1, np.int64)
        at = np.clip(np.searchsorted(self.ids, ids, sorter=self._order), 0, len(self.ids) - 1)
        pos = self._order[at]
        return np.where((self.ids[pos] == ids) & (ids >= 0), pos, -1)

    def remove(self, ids: np.ndarray) -> None:
        self._writable()
        if len(ids):
            pos = np.unique(self._positions(ids))
            pos = pos[pos >= 0]
            self.ids[pos] = -1
            self._live -= len(pos)
            self._order = self._mask = None

    # -- searching ---------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        if self.count == 0 or not len(queries):
            return np.zeros((len(queries), k), np.float32), np.full((len(queries), k), -1, np.int64)
        if self._mask is None and self._live < len(self.ids):  # a pass over every id: once per change
            self._mask = self.ids >= 0
        scores, positions = self.index.search(queries, k, live=self._mask)
        return scores, np.where(positions >= 0, self.ids[positions], -1)

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        if not len(ids):
            return np.zeros((0, self.dim), np.float32)
        pos = self._positions(ids)
        if (pos < 0).any():
            raise KeyError(f"ids not in the index: {np.asarray(ids)[pos < 0][:5].tolist()}")
        return self.index.decode(pos)

    @property
    def count(self) -> int:
        return self._live

    @property
    def kind(self) -> str:
        """The short list's FAISS spec, the re-ranking and the search settings."""
        return f"{self.index.spec}, 8-bit re-rank of {self.index.shortlist}, nprobe {self.index.nprobe}"

    # -- saving ------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write the index and the ids into the folder ``path`` (each file renamed into place)."""
        self._writable()
        if Path(path) != self.index.directory:
            raise ValueError(f"{path}: this compressed index lives in {self.index.directory}")
        self.index.save()
        with open(Path(path) / f"{self.IDS_FILE}.tmp", "wb") as fh:
            np.save(fh, self.ids)
        os.replace(Path(path) / f"{self.IDS_FILE}.tmp", Path(path) / self.IDS_FILE)

    @classmethod
    def load(cls, path: Path, dim: int, read_only: bool = False, name: str | None = None) -> "CompressedBackend":
        """The folder ``path``: the short list read, the codes memory-mapped (``read_only`` refuses changes)."""
        path = Path(path)
        if not (path / META_FILE).is_file():
            raise FileNotFoundError(path)
        index = CompressedIndex.load(path)
        if index.dim != dim:
            raise ValueError(f"{path}: vectors have dimension {index.dim}, the manifest says {dim}")
        ids = np.load(path / cls.IDS_FILE, allow_pickle=False)
        if len(ids) != index.count or index.index.ntotal != index.count:  # read while a writer saves it
            raise ValueError(f"{path}: {len(ids)} ids and {index.index.ntotal} short-list vectors for "
                             f"{index.count} codes")
        backend = cls(dim, path=path, index=index, ids=ids)
        backend.read_only = read_only
        return backend


BACKENDS["compressed"] = CompressedBackend
