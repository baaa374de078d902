"""Vocabulary-curve math: which sizes to measure, the curve's AUC, size at a drop.

A vocabulary curve measures a metric (accuracy, F1@3, ...) after keeping only
the `size` best-ranked words, for many sizes from a handful to the full
vocabulary. Chen et al. (NAACL 2019) summarise it by two numbers, both here:

- `curve_auc`: the area under the curve with x = log10(size) / log10(full_size)
  and y = metric / best;
- `size_at_drop`: the smallest vocabulary whose metric stays within `drop` of
  a reference (usually the full-vocabulary metric).

>>> sizes = log_spaced_sizes(100, num=3)
>>> sizes
array([  1,  10, 100])
>>> curve_auc(sizes, [0.2, 0.6, 0.8])
0.6875
>>> size_at_drop(sizes, [0.2, 0.6, 0.8], reference=0.8, drop=0.25)
10
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

__all__ = ["log_spaced_sizes", "curve_auc", "size_at_drop"]


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool):
        integer = None
    else:
        try:
            integer = operator.index(value)
        except TypeError:
            integer = None
    if integer is None or integer < minimum:
        raise ValueError(f"Received {name}={value!r}; expected an integer >= {minimum}.")
    return integer


def _check_finite(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not np.isfinite(number):
        raise ValueError(f"Received {name}={value!r}; expected a finite number.")
    return number


def _sorted_curve(sizes: Any, metric: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validates a curve and returns it sorted by increasing size."""
    sizes = np.asarray(sizes)
    metric = np.asarray(metric, dtype=np.float64)
    if sizes.ndim != 1 or metric.shape != sizes.shape:
        raise ValueError(
            f"Received sizes of shape {sizes.shape} and metric of shape "
            f"{metric.shape}; expected two 1-D arrays of the same length, one "
            "metric value per vocabulary size."
        )
    if sizes.size < 2:
        raise ValueError(
            f"Received a curve of {sizes.size} point(s); expected at least 2. "
            "Measure more vocabulary sizes (see log_spaced_sizes)."
        )
    if not np.issubdtype(sizes.dtype, np.integer):
        if not (np.issubdtype(sizes.dtype, np.floating) and np.all(sizes == np.round(sizes))):
            raise ValueError(
                f"Received sizes of dtype {sizes.dtype} with non-integer "
                "values; expected whole numbers of words."
            )
        sizes = sizes.astype(np.int64)
    if sizes.min() < 1:
        raise ValueError(
            f"Received a vocabulary size of {sizes.min()}; expected sizes "
            ">= 1 (log10 of 0 words is undefined). Drop the empty vocabulary."
        )
    if not np.all(np.isfinite(metric)):
        first = int(np.flatnonzero(~np.isfinite(metric))[0])
        raise ValueError(
            f"Received metric[{first}]={metric[first]}; expected finite "
            "values. Re-measure or drop that point."
        )
    order = np.argsort(sizes, kind="stable")
    sizes, metric = sizes[order], metric[order]
    repeated = sizes[1:][sizes[1:] == sizes[:-1]]
    if repeated.size:
        raise ValueError(
            f"Received vocabulary size {repeated[0]} more than once; expected "
            "distinct sizes. Average the repeated measurements first."
        )
    return sizes, metric


def log_spaced_sizes(full_size: int, num: int = 200, min_size: int = 1) -> np.ndarray:
    """About `num` vocabulary sizes, evenly spaced in log scale.

    Returns sorted unique ints from `min_size` to `full_size`, both included.
    Sizes that round to the same integer are merged, so small vocabularies
    can yield fewer than `num` sizes.

    >>> log_spaced_sizes(1000, num=4)
    array([   1,   10,  100, 1000])
    >>> log_spaced_sizes(10, num=20)
    array([ 1,  2,  3,  4,  5,  6,  7,  8,  9, 10])
    """
    full_size = _check_int("full_size", full_size, 1)
    num = _check_int("num", num, 2)
    min_size = _check_int("min_size", min_size, 1)
    if min_size > full_size:
        raise ValueError(
            f"Received min_size={min_size} and full_size={full_size}; "
            "expected min_size <= full_size. Lower min_size."
        )
    sizes = np.logspace(np.log10(min_size), np.log10(full_size), num)
    sizes = np.clip(np.rint(sizes).astype(np.int64), min_size, full_size)
    # Rounding of 10**log10(n) can miss the ends by one; pin them exactly.
    sizes[0], sizes[-1] = min_size, full_size
    return np.unique(sizes)


def curve_auc(
    sizes: Any,
    metric: Any,
    full_size: int | None = None,
    best: float | None = None,
) -> float:
    """Trapezoid area under the vocabulary curve in normalised coordinates.

    x = log10(size) / log10(full_size) and y = metric / best, where
    `full_size` defaults to the largest measured size and `best` to the
    largest metric value. The area is taken over the x range the curve
    covers, from log10(min(sizes)) / log10(full_size) to
    log10(max(sizes)) / log10(full_size), and is *not* rescaled by that
    range: a curve measured from 1 word to `full_size` can reach 1.0, one
    measured from 10 of 10,000 words at most 0.75. Curves compared with each
    other (e.g. variational against frequency ranking) should share `sizes`,
    `full_size` and `best` (e.g. the full-vocabulary metric).

    >>> curve_auc([10, 100, 1000], [1.0, 1.0, 1.0], full_size=10000)
    0.5
    >>> curve_auc([1, 10, 100], [0.2, 0.6, 0.8], best=1.0)
    0.55
    """
    sizes, metric = _sorted_curve(sizes, metric)
    if full_size is None:
        full_size = int(sizes[-1])
    full_size = _check_int("full_size", full_size, 2)
    if full_size < sizes[-1]:
        raise ValueError(
            f"Received full_size={full_size} below the largest measured size "
            f"{sizes[-1]}; expected full_size >= every size. Pass the full "
            "vocabulary size, or leave full_size=None."
        )
    if best is None:
        best = float(metric.max())
    best = _check_finite("best", best)
    if best <= 0:
        raise ValueError(
            f"Received best={best}; expected a positive metric value to "
            "divide by. Pass the full-vocabulary metric as best."
        )
    x = np.log10(sizes) / np.log10(full_size)
    y = metric / best
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


def size_at_drop(sizes: Any, metric: Any, reference: float, drop: float) -> int | None:
    """Smallest size from which the metric stays >= `reference - drop`.

    Returns the smallest measured size s such that *every* measured size
    >= s has `metric >= reference - drop`, or None if even the largest size
    falls below. Requiring the later points to stay above makes the answer
    robust to a noisy small vocabulary that happens to score well: a single
    lucky point below a dip is not reported.

    >>> sizes = [1, 2, 4, 8, 16]
    >>> metric = [0.1, 0.75, 0.5, 0.75, 0.8]   # 2 words: a lucky spike
    >>> size_at_drop(sizes, metric, reference=0.8, drop=0.1)
    8
    >>> size_at_drop(sizes, metric, reference=0.9, drop=0.05) is None
    True
    """
    sizes, metric = _sorted_curve(sizes, metric)
    reference = _check_finite("reference", reference)
    drop = _check_finite("drop", drop)
    if drop < 0:
        raise ValueError(
            f"Received drop={drop}; expected a non-negative metric drop "
            "(e.g. 0.01 for one accuracy point). Pass abs(drop)."
        )
    within = metric >= reference - drop
    if not within[-1]:
        return None
    failing = np.flatnonzero(~within)
    first_of_last_run = failing[-1] + 1 if failing.size else 0
    return int(sizes[first_of_last_run])
