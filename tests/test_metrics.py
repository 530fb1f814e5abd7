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
