"""Tests for vtrain.vocabulary.curves on small curves computed by hand."""

import numpy as np
import pytest

from vtrain.vocabulary import curves

# --------------------------------------------------------------------------
# log_spaced_sizes
# --------------------------------------------------------------------------


def test_log_spaced_sizes_powers_of_ten():
    sizes = curves.log_spaced_sizes(1000, num=4)
    np.testing.assert_array_equal(sizes, [1, 10, 100, 1000])
    assert sizes.dtype.kind == "i"


def test_log_spaced_sizes_with_min_size():
    np.testing.assert_array_equal(
        curves.log_spaced_sizes(1000, num=3, min_size=10), [10, 100, 1000]
    )


def test_log_spaced_sizes_merges_sizes_that_round_together():
    # 20 log-spaced points between 1 and 10 round to each integer at least once.
    np.testing.assert_array_equal(curves.log_spaced_sizes(10, num=20), np.arange(1, 11))


def test_log_spaced_sizes_on_a_real_vocabulary():
    sizes = curves.log_spaced_sizes(20003)
    assert sizes[0] == 1 and sizes[-1] == 20003
    assert np.all(np.diff(sizes) > 0)  # sorted and unique
    assert 150 < sizes.size <= 200
    ratios = sizes[-50:][1:] / sizes[-50:][:-1]
    # Large sizes are not merged: consecutive ratios are about 20003**(1/199).
    assert ratios == pytest.approx(20003 ** (1 / 199), rel=1e-3)


def test_log_spaced_sizes_single_size():
    np.testing.assert_array_equal(curves.log_spaced_sizes(5, num=10, min_size=5), [5])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"full_size": 0}, r"Received full_size=0; expected an integer >= 1"),
        ({"full_size": 10.5}, r"Received full_size=10.5; expected an integer >= 1"),
        ({"full_size": 10, "num": 1}, r"Received num=1; expected an integer >= 2"),
        ({"full_size": 10, "min_size": 0}, r"Received min_size=0; expected an integer >= 1"),
        (
            {"full_size": 10, "min_size": 20},
            r"min_size=20 and full_size=10; expected min_size <= full_size",
        ),
    ],
)
def test_log_spaced_sizes_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        curves.log_spaced_sizes(**kwargs)


# --------------------------------------------------------------------------
# curve_auc
# --------------------------------------------------------------------------


def test_curve_auc_by_hand():
    # x = [0, 1/2, 1]; y = metric / 0.8 = [1/4, 3/4, 1].
    # AUC = 1/2 * (1/4 + 3/4) / 2 + 1/2 * (3/4 + 1) / 2 = 1/4 + 7/16 = 11/16.
    assert curves.curve_auc([1, 10, 100], [0.2, 0.6, 0.8]) == pytest.approx(11 / 16)


def test_curve_auc_order_of_points_does_not_matter():
    assert curves.curve_auc([100, 1, 10], [0.8, 0.2, 0.6]) == pytest.approx(11 / 16)


def test_curve_auc_with_explicit_best():
    # y = [0.2, 0.6, 0.8]: 1/2 * 0.4 + 1/2 * 0.7 = 0.55.
    assert curves.curve_auc([1, 10, 100], [0.2, 0.6, 0.8], best=1.0) == pytest.approx(0.55)


def test_curve_auc_covers_only_the_measured_range():
    # x from log10(10)/4 = 0.25 to log10(1000)/4 = 0.75, y = 1: area 0.5.
    assert curves.curve_auc([10, 100, 1000], [0.5, 0.5, 0.5], full_size=10000) == pytest.approx(0.5)
    # The same points with full_size = 1000: x from 1/3 to 1, area 2/3.
    assert curves.curve_auc([10, 100, 1000], [0.5, 0.5, 0.5]) == pytest.approx(2 / 3)


def test_curve_auc_uneven_spacing():
    # sizes 1, 4, 16 of 16: x = [0, 1/2, 1]; y = [0, 1/2, 1] -> 1/8 + 3/8 = 1/2.
    # sizes 1, 2, 16: x = [0, 1/4, 1]; y = [0, 1/2, 1] -> 1/16 + 9/16 = 5/8.
    assert curves.curve_auc([1, 4, 16], [0.0, 1.0, 2.0]) == pytest.approx(1 / 2)
    assert curves.curve_auc([1, 2, 16], [0.0, 1.0, 2.0]) == pytest.approx(5 / 8)


def test_curve_auc_better_curve_has_larger_auc():
    sizes = curves.log_spaced_sizes(1000, num=20)
    worse = np.log10(sizes) / 3
    better = np.sqrt(worse)
    assert curves.curve_auc(sizes, better, best=1.0) > curves.curve_auc(sizes, worse, best=1.0)


def test_curve_auc_accepts_integral_float_sizes():
    assert curves.curve_auc([1.0, 10.0, 100.0], [0.2, 0.6, 0.8]) == pytest.approx(11 / 16)


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (
            ([1, 10], [0.5]),
            {},
            r"sizes of shape \(2,\) and metric of shape \(1,\); expected two 1-D arrays",
        ),
        (([10], [0.5]), {}, r"a curve of 1 point\(s\); expected at least 2"),
        (([0, 10], [0.1, 0.5]), {}, r"vocabulary size of 0; expected sizes >= 1"),
        (([1.5, 10], [0.1, 0.5]), {}, r"non-integer values; expected whole numbers"),
        (([1, 10, 10], [0.1, 0.5, 0.6]), {}, r"size 10 more than once; expected distinct sizes"),
        (([1, 10], [0.1, np.nan]), {}, r"metric\[1\]=nan; expected finite values"),
        (
            ([1, 10], [0.1, 0.5]),
            {"full_size": 5},
            r"full_size=5 below the largest measured size 10",
        ),
        (([1, 10], [0.0, 0.0]), {}, r"best=0.0; expected a positive metric value"),
        (([1, 10], [0.1, 0.5]), {"best": float("inf")}, r"best=inf; expected a finite number"),
    ],
)
def test_curve_auc_errors(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        curves.curve_auc(*args, **kwargs)


def test_curve_auc_needs_full_size_above_one():
    with pytest.raises(ValueError, match=r"full_size=1; expected an integer >= 2"):
        curves.curve_auc([1, 2], [0.1, 0.2], full_size=1)


# --------------------------------------------------------------------------
# size_at_drop
# --------------------------------------------------------------------------

SIZES = [1, 2, 4, 8, 16]


def test_size_at_drop_monotone_curve():
    metric = [0.1, 0.3, 0.6, 0.75, 0.8]
    # threshold 0.8 - 0.1 = 0.7: 8 words (0.75) is the first to reach it.
    assert curves.size_at_drop(SIZES, metric, reference=0.8, drop=0.1) == 8
    # threshold 0.5: 4 words.
    assert curves.size_at_drop(SIZES, metric, reference=0.8, drop=0.3) == 4
    # drop 0: only the full vocabulary reaches the reference itself.
    assert curves.size_at_drop(SIZES, metric, reference=0.8, drop=0.0) == 16


def test_size_at_drop_ignores_a_lucky_small_vocabulary():
    # 2 words spike to 0.75 but 4 words dip to 0.5: the answer is 8, not 2.
    metric = [0.1, 0.75, 0.5, 0.75, 0.8]
    assert curves.size_at_drop(SIZES, metric, reference=0.8, drop=0.1) == 8


def test_size_at_drop_boundary_is_inclusive():
    # 0.75 - 0.25 == 0.5 exactly in binary floating point.
    assert curves.size_at_drop([1, 2, 3], [0.25, 0.5, 0.75], reference=0.75, drop=0.25) == 2


def test_size_at_drop_whole_curve_within_drop():
    assert curves.size_at_drop(SIZES, [0.8] * 5, reference=0.8, drop=0.01) == 1


def test_size_at_drop_never_reached():
    metric = [0.1, 0.3, 0.6, 0.75, 0.8]
    assert curves.size_at_drop(SIZES, metric, reference=0.9, drop=0.05) is None
    # The largest size failing counts even if smaller ones pass.
    assert curves.size_at_drop(SIZES, [0.9, 0.9, 0.9, 0.9, 0.5], reference=0.9, drop=0.1) is None


def test_size_at_drop_sorts_the_curve():
    assert curves.size_at_drop([16, 1, 8, 2, 4], [0.8, 0.1, 0.75, 0.75, 0.5], 0.8, 0.1) == 8


@pytest.mark.parametrize(
    "reference, drop, message",
    [
        (0.8, -0.1, r"Received drop=-0.1; expected a non-negative metric drop.*abs\(drop\)"),
        (float("nan"), 0.1, r"Received reference=nan; expected a finite number"),
        ("high", 0.1, r"Received reference='high'; expected a finite number"),
    ],
)
def test_size_at_drop_errors(reference, drop, message):
    with pytest.raises(ValueError, match=message):
        curves.size_at_drop(SIZES, [0.1, 0.3, 0.6, 0.75, 0.8], reference, drop)
