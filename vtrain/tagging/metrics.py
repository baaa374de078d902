"""Ranking metrics at k for multi-label tag recommendation (NumPy).

Definitions, for N examples and T tags. For example i with true tag set
`true_i` (never empty) and a ranking of the tags:

- `top_k_i`: the first k tags of the ranking. From a score matrix, the
  ranking sorts tags by decreasing score, ties broken by the lower tag index
  (deterministic). From a predicted list (`ranking_metrics_from_lists`), it is
  the list itself, which may hold fewer than k tags.
- `hits_i = |top_k_i ∩ true_i|` (a tag counts once even if a list repeats it).
- `P@k_i = hits_i / k`: always divided by k, even when a predicted list is
  shorter than k; a decoder that proposes fewer tags is not rewarded for it.
- `R@k_i = hits_i / |true_i|`.
- `F1@k_i = 2 P R / (P + R)`, and 0 when `hits_i = 0`. It is computed per
  example, then averaged; it is *not* the F1 of the averaged P and R.
- `NDCG@k_i = DCG / IDCG` with binary relevance:
  `DCG = sum over ranks r = 1..k of [tag at r is true] / log2(r + 1)` and
  `IDCG = sum over r = 1..min(k, |true_i|) of 1 / log2(r + 1)`.

Every metric is the mean over the N examples of its per-example value.
Examples with no true tag make R@k and NDCG@k undefined, so they raise a
`ValueError` instead of being skipped silently.

`labels` may be:

- a multi-hot array `[N, T]` of 0/1 (or bools), as a NumPy array (anything
  with a `.shape`, e.g. a tensor, is read as multi-hot);
- a Python list (or tuple) of lists of tag indices, e.g. `[[0, 3], [2]]`.
  Lists are *always* read as indices. A list holding the same index twice is
  rejected, which catches multi-hot rows passed as lists by mistake.

>>> import numpy as np
>>> scores = np.array([[0.9, 0.1, 0.5, 0.3],
...                    [0.2, 0.8, 0.1, 0.7]])
>>> labels = [[0, 3], [2]]
>>> metrics = ranking_metrics(scores, labels, ks=(1, 2))
>>> {name: round(value, 4) for name, value in metrics.items()}
{'precision@1': 0.5, 'recall@1': 0.25, 'f1@1': 0.3333, 'ndcg@1': 0.5, \
'precision@2': 0.25, 'recall@2': 0.25, 'f1@2': 0.25, 'ndcg@2': 0.3066}
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "precision_at_k",
    "recall_at_k",
    "f1_at_k",
    "ndcg_at_k",
    "ranking_metrics",
    "ranking_metrics_from_lists",
]


# --------------------------------------------------------------------------
# Input checks and conversion.
# --------------------------------------------------------------------------


def _check_k(k: Any, name: str = "k") -> int:
    if isinstance(k, bool):
        k_int = None
    else:
        try:
            k_int = operator.index(k)
        except TypeError:
            k_int = None
    if k_int is None or k_int < 1:
        raise ValueError(
            f"Received {name}={k!r}; expected a positive integer number of "
            "top-ranked tags, such as 1, 3 or 5."
        )
    return k_int


def _check_ks(ks: Iterable[Any]) -> list[int]:
    if isinstance(ks, (str, bytes)) or not isinstance(ks, Iterable):
        raise ValueError(
            f"Received ks={ks!r}; expected a sequence of positive integers "
            "such as (1, 3, 5). For one value, pass ks=(k,)."
        )
    checked = [_check_k(k, "an entry of ks") for k in ks]
    if not checked:
        raise ValueError("Received ks=(); expected at least one k, such as (1, 3, 5).")
    return list(dict.fromkeys(checked))  # drop repeats, keep order


def _check_scores(scores: Any) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(
            f"Received scores of shape {scores.shape}; expected a non-empty "
            "2-D array [num_examples, num_tags]. For a single example, pass "
            "scores[None, :]."
        )
    nan_rows = np.flatnonzero(np.isnan(scores).any(axis=1))
    if nan_rows.size:
        raise ValueError(
            f"Received scores with NaN in {nan_rows.size} of {scores.shape[0]} "
            f"rows (first: row {nan_rows[0]}); expected real numbers. NaN "
            "scores cannot be ranked: check the model's outputs."
        )
    return scores


def _label_sets(labels: Any, num_tags: int | None) -> list[set[int]]:
    """Returns the true tags of each example as a set of indices.

    `num_tags` is the number of columns of the scores when there are scores
    (so indices and multi-hot widths can be checked), else None.
    """
    if isinstance(labels, (list, tuple)):
        sets = []
        for row, tags in enumerate(labels):
            try:
                indices = [operator.index(tag) for tag in tags]
            except TypeError:
                raise ValueError(
                    f"Received labels[{row}]={tags!r}; expected a list of "
                    "integer tag indices such as [0, 3]. For a multi-hot "
                    "matrix, pass np.asarray(labels)."
                ) from None
            unique = set(indices)
            if len(unique) != len(indices):
                raise ValueError(
                    f"Received labels[{row}]={list(tags)!r}, which repeats a "
                    "tag index; expected distinct tag indices. Python lists "
                    "are read as tag indices: if labels is a multi-hot "
                    "matrix, pass np.asarray(labels)."
                )
            out_of_range = [i for i in indices if i < 0 or (num_tags is not None and i >= num_tags)]
            if out_of_range:
                upper = "num_tags - 1" if num_tags is None else num_tags - 1
                raise ValueError(
                    f"Received labels[{row}] with tag index {out_of_range[0]}; "
                    f"expected indices in [0, {upper}]. Check that labels and "
                    "scores use the same tag vocabulary."
                )
            sets.append(unique)
        return sets

    multi_hot = np.asarray(labels)
    if multi_hot.ndim != 2:
        raise ValueError(
            f"Received labels of shape {multi_hot.shape}; expected a multi-hot "
            "array [num_examples, num_tags] or a list of lists of tag indices."
        )
    if num_tags is not None and multi_hot.shape[1] != num_tags:
        raise ValueError(
            f"Received labels with {multi_hot.shape[1]} columns and scores "
            f"with {num_tags}; expected the same number of tags in both. "
            "Check that labels and scores use the same tag vocabulary."
        )
    not_binary = multi_hot[~np.isin(multi_hot, (0, 1))]
    if not_binary.size:
        raise ValueError(
            "Received multi-hot labels with values other than 0 and 1 "
            f"(e.g. {not_binary[0].item()!r}); expected 0/1. For tag "
            "indices, pass a list of lists such as [[0, 3], [2]]."
        )
    return [set(np.flatnonzero(row).tolist()) for row in multi_hot]


def _check_label_counts(label_sets: list[set[int]], num_examples: int) -> np.ndarray:
    if len(label_sets) != num_examples:
        raise ValueError(
            f"Received {len(label_sets)} label rows for {num_examples} "
            "examples; expected one row of labels per example."
        )
    num_true = np.array([len(tags) for tags in label_sets], dtype=np.int64)
    empty = np.flatnonzero(num_true == 0)
    if empty.size:
        raise ValueError(
            f"{empty.size} of {num_examples} examples have no true label "
            f"(first: row {empty[0]}); recall and NDCG are undefined for them. "
            "Expected at least one true tag per example: drop those rows "
            "before computing metrics."
        )
    return num_true


# --------------------------------------------------------------------------
# Core: a relevance matrix [N, k] (is the tag at rank r true?) -> metrics.
# --------------------------------------------------------------------------


def _relevance_from_scores(scores: Any, labels: Any, max_k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = _check_scores(scores)
    num_examples, num_tags = scores.shape
    if max_k > num_tags:
        raise ValueError(
            f"Received k={max_k} with only {num_tags} tags; expected "
            f"k <= {num_tags}. Use a smaller k (or check that scores is "
            "[num_examples, num_tags], not transposed)."
        )
    label_sets = _label_sets(labels, num_tags)
    num_true = _check_label_counts(label_sets, num_examples)
    is_true = np.zeros(scores.shape, dtype=bool)
    for row, tags in enumerate(label_sets):
        is_true[row, list(tags)] = True
    # A stable sort of -scores keeps equal scores in index order: ties go to
    # the lower tag index, so results never depend on the sort algorithm.
    top = np.argsort(-scores, axis=1, kind="stable")[:, :max_k]
    return np.take_along_axis(is_true, top, axis=1), num_true


def _relevance_from_lists(
    predicted: Sequence[Sequence[int]], labels: Any, max_k: int
) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(predicted, np.ndarray) and predicted.ndim == 2:
        predicted = predicted.tolist()
    if not isinstance(predicted, (list, tuple)) or not predicted:
        raise ValueError(
            f"Received predicted={predicted!r}; expected a non-empty list of "
            "ranked lists of tag indices, e.g. [[3, 0], [2]]."
        )
    label_sets = _label_sets(labels, None)
    num_true = _check_label_counts(label_sets, len(predicted))
    relevance = np.zeros((len(predicted), max_k), dtype=bool)
    for row, (ranked, tags) in enumerate(zip(predicted, label_sets)):
        seen = set()
        for rank, tag in enumerate(list(ranked)[:max_k]):
            # A repeated tag fills a slot but earns nothing the second time.
            relevance[row, rank] = tag in tags and tag not in seen
            seen.add(tag)
    return relevance, num_true


def _per_example(relevance: np.ndarray, num_true: np.ndarray, k: int) -> dict:
    """Per-example P, R, F1, NDCG at k from the first k relevance columns."""
    hits = relevance[:, :k].sum(axis=1)
    precision = hits / k
    recall = hits / num_true
    denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall,
        denominator,
        out=np.zeros_like(precision),
        where=denominator > 0,
    )
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = relevance[:, :k] @ discounts
    ideal_dcg = np.cumsum(discounts)[np.minimum(num_true, k) - 1]
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "ndcg": dcg / ideal_dcg,
    }


def _mean_metrics(relevance: np.ndarray, num_true: np.ndarray, ks: list[int]) -> dict:
    results = {}
    for k in ks:
        for name, values in _per_example(relevance, num_true, k).items():
            results[f"{name}@{k}"] = float(values.mean())
    return results


# --------------------------------------------------------------------------
# Public API.
# --------------------------------------------------------------------------


def precision_at_k(scores: Any, labels: Any, k: int) -> float:
    """Mean over examples of `|top-k ∩ true| / k`.

    `scores`: `[N, T]` floats; `labels`: `[N, T]` multi-hot array or a list of
    lists of tag indices (see the module docstring).

    >>> precision_at_k([[0.9, 0.1, 0.5]], [[0, 1]], k=2)
    0.5
    """
    k = _check_k(k)
    relevance, num_true = _relevance_from_scores(scores, labels, k)
    return float(_per_example(relevance, num_true, k)["precision"].mean())


def recall_at_k(scores: Any, labels: Any, k: int) -> float:
    """Mean over examples of `|top-k ∩ true| / |true|`.

    >>> recall_at_k([[0.9, 0.1, 0.5]], [[0, 1]], k=2)
    0.5
    """
    k = _check_k(k)
    relevance, num_true = _relevance_from_scores(scores, labels, k)
    return float(_per_example(relevance, num_true, k)["recall"].mean())


def f1_at_k(scores: Any, labels: Any, k: int) -> float:
    """Mean over examples of the per-example F1 of P@k and R@k (0 if no hit).

    >>> f1_at_k([[0.9, 0.1, 0.5]], [[0, 1]], k=1)
    0.6666666666666666
    """
    k = _check_k(k)
    relevance, num_true = _relevance_from_scores(scores, labels, k)
    return float(_per_example(relevance, num_true, k)["f1"].mean())


def ndcg_at_k(scores: Any, labels: Any, k: int) -> float:
    """Mean over examples of binary-relevance NDCG at k.

    The ideal DCG counts `min(k, |true|)` relevant tags, so an example whose
    true tags fill the top ranks scores 1.0.

    >>> ndcg_at_k([[0.1, 0.9, 0.5]], [[0]], k=3)
    0.5
    """
    k = _check_k(k)
    relevance, num_true = _relevance_from_scores(scores, labels, k)
    return float(_per_example(relevance, num_true, k)["ndcg"].mean())


def ranking_metrics(scores: Any, labels: Any, ks: Iterable[int] = (1, 3, 5)) -> dict:
    """All metrics at every k in `ks`, from one sort of the scores.

    Returns `{"precision@k": ..., "recall@k": ..., "f1@k": ..., "ndcg@k": ...}`
    for each k, in the order of `ks`, as Python floats.

    >>> ranking_metrics([[0.9, 0.1, 0.5]], [[0, 1]], ks=(1,))
    {'precision@1': 1.0, 'recall@1': 0.5, 'f1@1': 0.6666666666666666, 'ndcg@1': 1.0}
    """
    ks = _check_ks(ks)
    relevance, num_true = _relevance_from_scores(scores, labels, max(ks))
    return _mean_metrics(relevance, num_true, ks)


def ranking_metrics_from_lists(
    predicted: Sequence[Sequence[int]], labels: Any, ks: Iterable[int] = (1, 3, 5)
) -> dict:
    """Like `ranking_metrics`, for ranked tag lists (e.g. a seq2seq decoder).

    `predicted[i]` is example i's ranking, best first; it may be shorter than
    k (P@k still divides by k) and a repeated tag counts once. `labels` is a
    list of lists of tag indices or a multi-hot array.

    >>> metrics = ranking_metrics_from_lists([[2, 0], [1]], [[0], [1, 2]], ks=(2,))
    >>> {name: round(value, 4) for name, value in metrics.items()}
    {'precision@2': 0.5, 'recall@2': 0.75, 'f1@2': 0.5833, 'ndcg@2': 0.622}
    """
    ks = _check_ks(ks)
    relevance, num_true = _relevance_from_lists(predicted, labels, max(ks))
    return _mean_metrics(relevance, num_true, ks)
