"""Tests for vtrain.tagging.metrics against numbers computed by hand."""

import math

import numpy as np
import pytest

from vtrain.tagging import metrics

# Three examples, five tags.
#   row 0: ranking 1, 3, 2, 4, 0; true {1, 2}
#   row 1: ranking 0, 1, 2, 3, 4; true {4}
#   row 2: ranking 2, 4, then the tied 0, 1, 3 in index order; true {0, 2, 4}
SCORES = np.array(
    [
        [0.1, 0.9, 0.3, 0.8, 0.2],
        [0.5, 0.4, 0.3, 0.2, 0.1],
        [0.0, 0.0, 0.7, 0.0, 0.6],
    ]
)
LABEL_LISTS = [[1, 2], [4], [0, 2, 4]]
MULTI_HOT = np.array(
    [
        [0, 1, 1, 0, 0],
        [0, 0, 0, 0, 1],
        [1, 0, 1, 0, 1],
    ]
)

D2 = 1 / math.log2(3)  # discount of rank 2
D5 = 1 / math.log2(6)  # discount of rank 5

# Per example (row 0, row 1, row 2):
#   k=1: hits 1, 0, 1 -> P 1, 0, 1;       R 1/2, 0, 1/3; F1 2/3, 0, 1/2
#   k=3: hits 2, 0, 3 -> P 2/3, 0, 1;     R 1, 0, 1;     F1 4/5, 0, 1
#   k=5: hits 2, 1, 3 -> P 2/5, 1/5, 3/5; R 1, 1, 1;     F1 4/7, 1/3, 3/4
#   NDCG@1: 1, 0, 1
#   NDCG@3: (1 + 1/2) / (1 + D2), 0, 1
#   NDCG@5: (1 + 1/2) / (1 + D2), D5 / 1, 1
EXPECTED = {
    "precision@1": 2 / 3,
    "recall@1": 5 / 18,
    "f1@1": 7 / 18,
    "ndcg@1": 2 / 3,
    "precision@3": 5 / 9,
    "recall@3": 2 / 3,
    "f1@3": 3 / 5,
    "ndcg@3": (1.5 / (1 + D2) + 0 + 1) / 3,
    "precision@5": 2 / 5,
    "recall@5": 1.0,
    "f1@5": 139 / 252,
    "ndcg@5": (1.5 / (1 + D2) + D5 + 1) / 3,
}


@pytest.mark.parametrize(
    "labels",
    [LABEL_LISTS, MULTI_HOT, MULTI_HOT.astype(bool)],
    ids=["index lists", "multi-hot", "bool multi-hot"],
)
def test_ranking_metrics_by_hand(labels):
    result = metrics.ranking_metrics(SCORES, labels, ks=(1, 3, 5))
    assert list(result) == list(EXPECTED)
    assert result == pytest.approx(EXPECTED, rel=1e-12)
    assert all(isinstance(value, float) for value in result.values())


@pytest.mark.parametrize("k", [1, 3, 5])
def test_single_metric_functions_agree(k):
    assert metrics.precision_at_k(SCORES, LABEL_LISTS, k) == pytest.approx(
        EXPECTED[f"precision@{k}"]
    )
    assert metrics.recall_at_k(SCORES, LABEL_LISTS, k) == pytest.approx(EXPECTED[f"recall@{k}"])
    assert metrics.f1_at_k(SCORES, LABEL_LISTS, k) == pytest.approx(EXPECTED[f"f1@{k}"])
    assert metrics.ndcg_at_k(SCORES, LABEL_LISTS, k) == pytest.approx(EXPECTED[f"ndcg@{k}"])


def test_default_ks_are_1_3_5():
    assert list(metrics.ranking_metrics(SCORES, LABEL_LISTS)) == list(EXPECTED)


def test_f1_is_per_example_not_of_the_means():
    # Mean P@1 = 2/3 and mean R@1 = 5/18 would give F1 = 20/51, not 7/18.
    assert metrics.f1_at_k(SCORES, LABEL_LISTS, 1) == pytest.approx(7 / 18)
    assert 7 / 18 != pytest.approx(20 / 51)


def test_ties_go_to_the_lower_index():
    tied = np.full((1, 4), 0.5)
    assert metrics.precision_at_k(tied, [[0]], 1) == 1.0
    assert metrics.precision_at_k(tied, [[1]], 1) == 0.0
    assert metrics.recall_at_k(tied, [[3]], 3) == 0.0
    assert metrics.recall_at_k(tied, [[2]], 3) == 1.0
    # A tie below a larger score: 2 first, then 0 and 1 in index order.
    assert metrics.ndcg_at_k([[0.2, 0.2, 0.9]], [[1]], 3) == pytest.approx(1 / 2)


def test_ndcg_ideal_counts_min_of_k_and_true():
    # Two true tags, both ranked first and second: perfect at every k.
    for k in (1, 2, 3):
        assert metrics.ndcg_at_k([[0.9, 0.8, 0.1]], [[0, 1]], k) == 1.0
    # One true tag ranked second: DCG = D2, IDCG = 1.
    assert metrics.ndcg_at_k([[0.9, 0.8, 0.1]], [[1]], 3) == pytest.approx(D2)


def test_k_equal_to_num_tags_is_allowed():
    assert metrics.recall_at_k(SCORES, LABEL_LISTS, 5) == 1.0


def test_ranking_metrics_from_lists_short_and_repeated():
    predicted = [[1, 3], [], [2, 2, 4]]
    result = metrics.ranking_metrics_from_lists(predicted, LABEL_LISTS, ks=(1, 3))
    # row 0: [1, 3]: k=1 hit (P 1, R 1/2); k=3 one hit of 3 slots (P 1/3, R 1/2, F1 2/5)
    # row 1: nothing predicted: 0 everywhere
    # row 2: [2, 2, 4]: the repeated 2 earns nothing: k=1 P 1, R 1/3, F1 1/2;
    #        k=3 hits 2: P 2/3, R 2/3, F1 2/3; NDCG@3 relevance [1, 0, 1]
    expected = {
        "precision@1": 2 / 3,
        "recall@1": 5 / 18,
        "f1@1": 7 / 18,
        "ndcg@1": 2 / 3,
        "precision@3": 1 / 3,
        "recall@3": 7 / 18,
        "f1@3": 16 / 45,
        "ndcg@3": (1 / (1 + D2) + 0 + 1.5 / (1 + D2 + 0.5)) / 3,
    }
    assert result == pytest.approx(expected, rel=1e-12)
    # Multi-hot labels give the same numbers.
    assert metrics.ranking_metrics_from_lists(predicted, MULTI_HOT, ks=(1, 3)) == pytest.approx(
        expected
    )


def test_lists_match_scores_when_the_lists_are_the_score_ranking():
    predicted = [[1, 3, 2, 4, 0], [0, 1, 2, 3, 4], [2, 4, 0, 1, 3]]
    from_lists = metrics.ranking_metrics_from_lists(predicted, LABEL_LISTS)
    assert from_lists == pytest.approx(EXPECTED, rel=1e-12)


def test_lists_longer_than_k_are_cut():
    result = metrics.ranking_metrics_from_lists([[0, 1, 2, 3]], [[3]], ks=(2,))
    assert result["precision@2"] == 0.0 and result["recall@2"] == 0.0


# --------------------------------------------------------------------------
# Errors.
# --------------------------------------------------------------------------


def test_examples_without_labels_are_reported():
    scores = np.zeros((4, 3))
    with pytest.raises(
        ValueError, match=r"2 of 4 examples have no true label \(first: row 1\).*drop those rows"
    ):
        metrics.precision_at_k(scores, [[0], [], [2], []], 1)
    with pytest.raises(ValueError, match=r"1 of 2 examples have no true label \(first: row 0\)"):
        metrics.ranking_metrics_from_lists([[0], [1]], np.array([[0, 0], [0, 1]]), ks=(1,))


@pytest.mark.parametrize(
    "scores, labels, k, message",
    [
        (SCORES, LABEL_LISTS, 6, r"Received k=6 with only 5 tags; expected k <= 5.*transposed"),
        (SCORES, LABEL_LISTS, 0, r"Received k=0; expected a positive integer"),
        (SCORES, LABEL_LISTS, 1.5, r"Received k=1.5; expected a positive integer"),
        (
            SCORES[0],
            LABEL_LISTS,
            1,
            r"Received scores of shape \(5,\); expected a non-empty 2-D.*scores\[None, :\]",
        ),
        (np.zeros((0, 5)), [], 1, r"Received scores of shape \(0, 5\)"),
        (
            [[0.1, np.nan], [0.2, 0.3]],
            [[0], [1]],
            1,
            r"NaN in 1 of 2 rows \(first: row 0\); expected real numbers",
        ),
        (
            SCORES,
            LABEL_LISTS[:2],
            1,
            r"Received 2 label rows for 3 examples; expected one row of labels per example",
        ),
        (
            SCORES,
            MULTI_HOT[:, :4],
            1,
            r"labels with 4 columns and scores with 5; expected the same number",
        ),
        (SCORES, MULTI_HOT * 2, 1, r"values other than 0 and 1 \(e.g. 2\); expected 0/1"),
        (SCORES, MULTI_HOT[0], 1, r"Received labels of shape \(5,\); expected a multi-hot array"),
        (
            SCORES,
            [[1, 2], [5], [0]],
            1,
            r"Received labels\[1\] with tag index 5; expected indices in \[0, 4\]",
        ),
        (SCORES, [[1, 2], [-1], [0]], 1, r"Received labels\[1\] with tag index -1"),
        (
            SCORES,
            [[1, 2], ["a"], [0]],
            1,
            r"Received labels\[1\]=\['a'\]; expected a list of integer tag indices",
        ),
        # A multi-hot matrix passed as a Python list is caught by its repeats.
        (
            SCORES,
            MULTI_HOT.tolist(),
            1,
            r"labels\[0\]=\[0, 1, 1, 0, 0\], which repeats a tag index.*np.asarray\(labels\)",
        ),
    ],
)
def test_input_errors(scores, labels, k, message):
    with pytest.raises(ValueError, match=message):
        metrics.precision_at_k(scores, labels, k)


@pytest.mark.parametrize(
    "ks, message",
    [
        ((), r"Received ks=\(\); expected at least one k"),
        (3, r"Received ks=3; expected a sequence of positive integers.*ks=\(k,\)"),
        ((1, -2), r"Received an entry of ks=-2; expected a positive integer"),
    ],
)
def test_ks_errors(ks, message):
    with pytest.raises(ValueError, match=message):
        metrics.ranking_metrics(SCORES, LABEL_LISTS, ks=ks)


def test_repeated_ks_are_reported_once():
    assert list(metrics.ranking_metrics(SCORES, LABEL_LISTS, ks=(3, 3))) == [
        "precision@3",
        "recall@3",
        "f1@3",
        "ndcg@3",
    ]


def test_predicted_must_be_a_non_empty_list():
    with pytest.raises(ValueError, match=r"Received predicted=\[\]; expected a non-empty list"):
        metrics.ranking_metrics_from_lists([], [], ks=(1,))
