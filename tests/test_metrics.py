import pytest

from semcopy_lib.eval import mrr, recall_at_k

RANKED = [["a", "b", "c"], ["x", "a", "y"], ["p", "q", "r"]]
TRUTH = ["a", "a", "z"]


def test_recall_at_k_by_hand():
    assert recall_at_k(RANKED, TRUTH, 1) == pytest.approx(1 / 3)
    assert recall_at_k(RANKED, TRUTH, 2) == pytest.approx(2 / 3)
    assert recall_at_k(RANKED, TRUTH, 10) == pytest.approx(2 / 3)


def test_mrr_by_hand():
    assert mrr(RANKED, TRUTH) == pytest.approx((1 + 1 / 2 + 0) / 3)


def test_empty():
    assert recall_at_k([], [], 1) == 0.0 and mrr([], []) == 0.0


def test_average_precision_at_k_by_hand():
    from semcopy_lib.eval import average_precision_at_k

    # relevant at ranks 1 and 3 of 3 relevant: (1/1 + 2/3) / min(5, 3)
    assert average_precision_at_k(["a", "x", "b", "y", "z"], {"a", "b", "c"}, 5) == pytest.approx((1 + 2 / 3) / 3)
    # only the first k count, and the divisor is min(k, |relevant|)
    assert average_precision_at_k(["x", "a", "b"], {"a", "b", "c"}, 2) == pytest.approx((1 / 2) / 2)
    assert average_precision_at_k(["a"], set(), 10) == 0.0


def test_map_at_k_by_hand():
    from semcopy_lib.eval import map_at_k

    ranked = [["a", "b"], ["x", "a"], ["p", "q"]]
    relevant = [{"a"}, {"a"}, {"z"}]
    assert map_at_k(ranked, relevant, 10) == pytest.approx((1 + 1 / 2 + 0) / 3)  # one relevant each: = MRR
    assert map_at_k([["c1", "d", "c2"]], [{"c1", "c2"}], 10) == pytest.approx((1 + 2 / 3) / 2)


def test_micro_average_precision_by_hand():
    from semcopy_lib.eval import micro_average_precision

    truth = [("q1", "r1"), ("q2", "r2")]  # q3 has no match in the gallery
    predictions = [("q1", "r1", 0.9), ("q3", "r5", 0.8), ("q2", "r2", 0.7), ("q2", "r9", 0.6)]
    # ranked: correct at 1 (1/1), wrong, correct at 3 (2/3): (1 + 2/3) / 2 true pairs
    assert micro_average_precision(predictions, truth) == pytest.approx((1 + 2 / 3) / 2)
    # the unmatched query scored lower than both true pairs costs nothing
    lower = [("q1", "r1", 0.9), ("q3", "r5", 0.1), ("q2", "r2", 0.7)]
    assert micro_average_precision(lower, truth) == pytest.approx(1.0)
    # a true pair never predicted is recall lost
    assert micro_average_precision([("q1", "r1", 0.9)], truth) == pytest.approx(0.5)
    assert micro_average_precision([], []) == 0.0
