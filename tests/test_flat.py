"""FlatScan: the bf16-screened search returns exactly float32's top-k, and says when it had to widen or rescan."""

import math

import numpy as np
import pytest
import torch
from conftest import FUZZ
from hypothesis import example, given, settings
from hypothesis import strategies as st

from semcopy_lib.index import flat
from semcopy_lib.index.flat import FlatScan, bf16_error, chosen_ways


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def exact(queries: np.ndarray, vectors: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    scores = queries @ vectors.T
    rows = np.argsort(-scores, axis=1, kind="stable")[:, :n]
    return np.take_along_axis(scores, rows, 1), rows


def test_screened_search_equals_float32_on_spread_vectors():
    rng = np.random.default_rng(0)
    vectors = unit(rng.normal(size=(6000, 64)))
    queries = unit(vectors[:25] + 0.3 * rng.normal(size=(25, 64)))
    scan = FlatScan(vectors, screen=True, device="cpu")
    scores, rows = scan.search(queries, 20)
    want_scores, want_rows = exact(queries, vectors, 20)
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    assert scan.rescans == 0  # spread scores: the screening vouched for every query


def test_near_ties_within_bf16_error_are_rescanned_and_still_exact():
    rng = np.random.default_rng(1)
    base = unit(rng.normal(size=(1, 64)))
    # 6000 vectors whose scores against the base all lie within a few 1e-4: bf16 cannot rank them
    vectors = unit(base + 3e-3 * rng.normal(size=(6000, 64)))
    scan = FlatScan(vectors, screen=True, device="cpu")
    queries = np.repeat(base, 2, axis=0)
    scores, rows = scan.search(queries, 10)
    want_scores, want_rows = exact(queries, vectors, 10)
    # ranks 10 and 11 differ by one float32 unit (6e-8), which CPU kernels sum differently (seen on an
    # AMX Xeon): the rows found must have the best scores in float64, to that unit
    true = (base.astype(np.float64) @ vectors.T.astype(np.float64))[0]
    for found in rows:
        np.testing.assert_allclose(true[found], np.sort(true)[::-1][:10], atol=1e-7)
    np.testing.assert_allclose(scores, want_scores, atol=1e-6)
    assert (scan.widened, scan.rescans) == (0, 2)  # every row within the bound: nothing to narrow it to
    assert want_scores[0, 0] - want_scores[0, -1] < bf16_error(64)  # the case the guard is for


def test_a_cluster_of_near_ties_widens_the_candidates_without_a_full_rescan():
    """400 rows around the query (a gallery's many near-copies of one picture) tie within the bf16 bound,
    more than the 84 candidates of n = 10: the candidates grow to the rows whose bf16 score reaches the
    10th exact score minus the bound (the cluster), never to the 6000 rows, and the answer is float32's."""
    rng = np.random.default_rng(5)
    base = unit(rng.normal(size=(2, 64)))
    cluster = unit(np.repeat(base, 200, axis=0) + 0.01 * rng.normal(size=(400, 64)))
    vectors = np.concatenate([unit(rng.normal(size=(5600, 64))), cluster]).astype(np.float32)
    scan = FlatScan(vectors, screen=True, device="cpu")
    scores, rows = scan.search(base, 10)
    want_scores, want_rows = exact(base, vectors, 10)
    true = base.astype(np.float64) @ vectors.T.astype(np.float64)
    for i in range(2):
        np.testing.assert_allclose(true[i, rows[i]], np.sort(true[i])[::-1][:10], atol=1e-7)
    np.testing.assert_allclose(scores, want_scores, atol=1e-6)
    assert (scan.widened, scan.rescans) == (2, 0)
    assert rows.min() >= 5600  # the top 10 are in the cluster
    alone = FlatScan(vectors, screen=True, device="cpu")  # a query searched on its own is screened too
    np.testing.assert_array_equal(alone.search(base[:1], 10)[1], rows[:1])
    assert (alone.widened, alone.rescans) == (1, 0)


def test_widened_rescanned_and_vouched_queries_in_one_search_each_get_float32s_answer():
    """One search of three queries: one whose candidates the screening vouches for, one that widens to
    its cluster of near-copies, one among near ties everywhere (a full float32 scan): each query's rows
    and scores are float32's, whichever way it took."""
    rng = np.random.default_rng(7)
    b1, b2 = unit(rng.normal(size=(2, 64)))[:, None, :]
    cluster = unit(np.repeat(b1, 400, axis=0) + 0.01 * rng.normal(size=(400, 64)))
    ties = unit(np.repeat(b2, 2600, axis=0) + 3e-3 * rng.normal(size=(2600, 64)))
    spread = unit(rng.normal(size=(3000, 64)))
    vectors = np.concatenate([spread, cluster, ties]).astype(np.float32)
    queries = np.concatenate([unit(spread[:1] + 0.3 * rng.normal(size=(1, 64))), b1, b2]).astype(np.float32)
    scan = FlatScan(vectors, screen=True, device="cpu")
    scores, rows = scan.search(queries, 10)
    true = queries.astype(np.float64) @ vectors.T.astype(np.float64)
    for i in range(3):
        np.testing.assert_allclose(true[i, rows[i]], np.sort(true[i])[::-1][:10], atol=1e-7)
    np.testing.assert_allclose(scores, exact(queries, vectors, 10)[0], atol=1e-6)
    assert (scan.widened, scan.rescans) == (1, 1)
    assert rows[0, 0] == 0 and (rows[1] >= 3000).all() and (rows[1] < 3400).all() and (rows[2] >= 3400).all()


def adversarial(dim: int, traps: int, up: list[bool], flips: list[bool], fillers: int) -> tuple[np.ndarray, np.ndarray]:
    """(q, x): unit vectors whose bf16 roundings all push q . x one way. ``traps`` components of x sit
    just past a bf16 rounding point (rounding down by nearly 2^-8 of themselves, or up when ``up``),
    q equals x there (negated where ``flips``), and ``fillers`` small components make both unit."""
    e = math.ceil(math.log2(math.sqrt(traps))) if traps > 1 else 0
    x = np.zeros(dim)
    for i in range(traps):
        nudge = 2**-8 - 2**-14 if not up[i % len(up)] else 2**-8 + 2**-14
        x[i] = 2.0**-e * (1 + nudge) * (-1 if i % 3 == 1 else 1)
    rest = 1 - float(np.sum(x**2))
    if rest < 0:
        x /= np.sqrt(np.sum(x**2))
    elif fillers:
        x[traps:traps + fillers] = math.sqrt(rest / fillers)
    q = x * np.where([flips[i % len(flips)] for i in range(dim)], -1, 1)
    return unit(q[None]), unit(x[None])


@settings(max_examples=100 * FUZZ)
@given(dim=st.sampled_from([64, 512, 1024, 1280, 2048]), share=st.floats(0.5, 1.0),
       up=st.lists(st.booleans(), min_size=1, max_size=8), flips=st.lists(st.booleans(), min_size=1, max_size=8),
       fillers=st.integers(0, 8))
@example(dim=1024, share=1016 / 1024, up=[False], flips=[False], fillers=1)  # q = x: bf16 says 0.9922 for 1
def test_bf16_scores_stay_within_the_proved_bound(dim, share, up, flips, fillers):
    traps = max(1, min(dim - fillers, round(share * dim)))
    q, x = adversarial(dim, traps, up, flips, fillers)
    coarse = (torch.from_numpy(q).to(torch.bfloat16) @ torch.from_numpy(x).to(torch.bfloat16).T).float().item()
    assert abs(coarse - (q @ x.T).item()) <= bf16_error(dim)


@settings(max_examples=20 * FUZZ)
@given(dim=st.sampled_from([256, 1280]), up=st.lists(st.booleans(), min_size=1, max_size=4),
       spread=st.floats(1e-4, 3e-2), seed=st.integers(0, 2**16))
def test_screened_top_k_equals_float32_on_adversarial_near_ties(dim, up, spread, seed):
    rng = np.random.default_rng(seed)
    q, x = adversarial(dim, dim - 4, up, [False], 4)
    # 5000 rows around x whose exact scores against q lie within ``spread``; x's own bf16 score is
    # pushed down by about 2^-7, further than most of theirs
    vectors = np.concatenate([unit(x + spread * rng.normal(size=(4999, dim))), x]).astype(np.float32)
    scan = FlatScan(vectors, screen=True, device="cpu")
    scores, rows = scan.search(np.repeat(q, 2, axis=0), 10)
    true = (q.astype(np.float64) @ vectors.T.astype(np.float64))[0]
    for found in rows:
        np.testing.assert_allclose(true[found], np.sort(true)[::-1][:10], atol=2e-7)
        assert found[0] == 4999  # q itself is in the gallery


@pytest.mark.parametrize("screen", [True, False])
def test_n_equal_to_all_rows(screen):
    vectors = unit(np.random.default_rng(2).normal(size=(50, 16)))
    scores, rows = FlatScan(vectors, screen=screen, device="cpu").search(vectors[:3], 50)
    assert sorted(rows[0].tolist()) == list(range(50)) and scores[0, 0] == pytest.approx(1.0, abs=1e-6)


def test_read_only_queries_are_searched_without_a_warning():
    import warnings

    vectors = unit(np.random.default_rng(3).normal(size=(20, 8)))
    frozen = np.frombuffer(vectors[:2].tobytes(), dtype=np.float32).reshape(2, 8)  # as verify reads SQLite
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores, rows = FlatScan(vectors, screen=False, device="cpu").search(frozen, 1)
    assert rows[:, 0].tolist() == [0, 1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run on a GPU machine)")
def test_cuda_scan_is_exact_and_is_the_default_there():
    rng = np.random.default_rng(4)
    vectors = unit(rng.normal(size=(6000, 64)))
    queries = unit(vectors[:25] + 0.3 * rng.normal(size=(25, 64)))
    scan = FlatScan(vectors)
    assert scan.device.type == "cuda"
    scores, rows = scan.search(queries, 20)
    want_scores, want_rows = exact(queries, vectors, 20)
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)


def test_queries_sharing_candidates_get_float32_s_top_k():
    """A query's regions (here ten around each of three vectors) share most of their candidates, which
    are read once for all of them: each still gets float32's own top-k."""
    rng = np.random.default_rng(2)
    vectors = unit(rng.normal(size=(6000, 64)))
    queries = unit(np.repeat(vectors[:3], 10, axis=0) + 0.25 * rng.normal(size=(30, 64)))
    scan = FlatScan(vectors, screen=True, device="cpu")
    scores, rows = scan.search(queries, 20)
    want_scores, want_rows = exact(queries, vectors, 20)
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    assert scan.rescans == 0


class StepClock:
    """A timer whose successive intervals (start, end pairs) last ``steps[i]`` seconds in turn."""

    def __init__(self, steps):
        self.steps, self.now, self.calls = list(steps), 0.0, 0

    def __call__(self) -> float:
        if self.calls % 2:  # an end reading: the interval that started at the previous one
            self.now += self.steps.pop(0)
        self.calls += 1
        return self.now


@pytest.fixture
def chosen():
    """:data:`flat.CHOSEN` emptied for the test and restored after it."""
    saved = dict(flat.CHOSEN)
    flat.CHOSEN.clear()
    yield flat.CHOSEN
    flat.CHOSEN.clear()
    flat.CHOSEN.update(saved)


@pytest.mark.parametrize("screened_s, plain_s, keeps", [(5.0, 1.0, False), (1.0, 5.0, True)])
def test_a_timed_scan_keeps_the_faster_way_for_each_query_count_and_answers_exactly(chosen, screened_s, plain_s, keeps):
    """Trials alternate screened and float32 (3 each); the way with the lower median is then kept for
    that class of query count (29 rows here, 17-32), while a lone row (another class) is still timed."""
    rng = np.random.default_rng(6)
    vectors = unit(rng.normal(size=(6000, 64)))
    queries = unit(vectors[:29] + 0.3 * rng.normal(size=(29, 64)))
    want_scores, want_rows = exact(queries, vectors, 20)
    clock = StepClock([screened_s, plain_s] * 3 + [1.0])
    scan = FlatScan(vectors, screen="timed", device="cpu", clock=clock)
    for _ in range(8):  # six trials, then two searches the chosen way (not timed)
        scores, rows = scan.search(queries, 20)
        np.testing.assert_array_equal(rows, want_rows)
        np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    assert chosen == {(13, 5): keeps}  # 6,000 rows: 13 bits
    assert (scan._coarse is not None) == keeps  # the bf16 copy is kept only where screening is
    assert clock.calls == 12 and clock.steps == [1.0]
    scan.search(queries[:1], 20)
    assert clock.calls == 14 and chosen == {(13, 5): keeps}  # a lone row is timed apart
    assert chosen_ways(6000) == {"17-32": "bf16 screen" if keeps else "float32"} and chosen_ways(20_000) == {}


def test_a_scan_made_later_uses_the_way_chosen_before(chosen):
    vectors = unit(np.random.default_rng(7).normal(size=(6000, 64)))
    chosen[(13, 0)] = False
    clock = StepClock([])
    scan = FlatScan(vectors, screen="timed", device="cpu", clock=clock)
    scores, rows = scan.search(vectors[4:5], 3)
    assert rows[0, 0] == 4 and clock.calls == 0 and scan._coarse is None  # float32 at once, nothing timed
