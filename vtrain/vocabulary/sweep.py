"""Measure a model at many vocabulary sizes, and summarise the curves.

`sweep` keeps the first `size` words of a ranking (`mask_embedding`) and
measures the model with a function of yours, `measure(model, batches) ->
{metric: float}`; `summarise` gives each ranking's AUC and its vocabulary
size at a fixed drop of one metric (`vtrain.vocabulary.curves`).

>>> curve = {"sizes": [1, 10, 100], "accuracy": [0.2, 0.6, 0.8]}
>>> summarise({"frequency": curve}, "accuracy", reference=0.8, drops=(0.25,))["methods"]
{'frequency': {'auc': 0.6875, 'size_at_drop': {'25': 10}}}
"""

import numpy as np

from vtrain.vocabulary import curves
from vtrain.vocabulary.masking import embedding_layer, mask_embedding

DROPS = (0.005, 0.01, 0.03)  # metric drops of 0.5, 1 and 3 points


def sweep(model, batches, ranking, sizes, measure):
    """`measure(model, batches)` with only the first `size` words of `ranking` kept.

    A `VariationalEmbedding` still drops its rows with `log_alpha >=
    threshold`: the curve is that of the model as it predicts, so at the
    full size every ranking gives the model's own score.

    Args:
        model: a model with one word embedding (`embedding_layer`).
        batches: a list of batches, read once per size (materialise a
            `tf.data.Dataset` first: `[(x.numpy(), y.numpy()) for x, y in ds]`).
        ranking: word ids, best first (`vtrain.vocabulary.rankings`).
        sizes: vocabulary sizes (numbers of words), each in [1, len(ranking)].
        measure: `measure(model, batches) -> {metric name: float}`.

    Returns:
        `{"sizes": [...], metric name: [one value per size], ...}`.

    Example:
    >>> import keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Embedding(6, 1),
    ...                           keras.layers.Flatten()])
    >>> batches = [np.array([[2, 5]])]
    >>> nonzero = lambda m, b: {"nonzero": float(np.count_nonzero(m(b[0])))}
    >>> sweep(model, batches, ranking=[5, 2, 3, 4], sizes=[1, 2], measure=nonzero)
    {'sizes': [1, 2], 'nonzero': [1.0, 2.0]}
    """
    ranking = np.asarray(ranking, np.int64)
    sizes = [int(size) for size in sizes]
    if not sizes or min(sizes) < 1 or max(sizes) > len(ranking):
        raise ValueError(
            f"sweep received sizes from {min(sizes, default=None)} to "
            f"{max(sizes, default=None)}; expected sizes in [1, {len(ranking)}] "
            "(the number of ranked words). Use curves.log_spaced_sizes(len(ranking))."
        )
    batches = list(batches)
    if batches and not embedding_layer(model).built:
        first = batches[0][0] if isinstance(batches[0], (tuple, list)) else batches[0]
        model(np.asarray(first)[:1])  # creates the weights to mask
    curve = {"sizes": sizes}
    for size in sizes:
        with mask_embedding(model, ranking[:size]):
            values = measure(model, batches)
        for name, value in values.items():
            curve.setdefault(name, []).append(float(value))
    return curve


def summarise(curve_by_method, metric, reference, drops=DROPS):
    """AUC and vocabulary size at each drop of `metric`, per ranking method.

    x = log10(size) / log10(full size), y = metric / best metric, where the
    full size is the largest size measured by any method and the best is
    the highest value of any curve or the reference, so all methods share
    the axes (`curves.curve_auc`). Sizes at a drop are `curves.size_at_drop`
    against `reference` (e.g. the full-vocabulary model's value): the
    smallest size from which the curve stays within `drop` of it, or None.

    Args:
        curve_by_method: `{method: sweep(...) result}`.
        metric: the curve key to summarise (higher is better), e.g. "f1_at_3".
        reference: the value the drops are measured from.
        drops: metric drops (0.01 = one point).

    Returns:
        `{"full_size", "best", "reference", "metric", "methods": {method:
        {"auc": float, "size_at_drop": {"0.5": int or None, ...}}}}`,
        drops keyed in points.

    Example: see the module docstring.
    """
    if not curve_by_method:
        raise ValueError("summarise received no curves; expected {method: sweep result}.")
    missing = [m for m, c in curve_by_method.items() if metric not in c]
    if missing:
        raise ValueError(
            f"summarise received metric={metric!r}, but the curves of {missing} "
            f"have only {sorted(curve_by_method[missing[0]])}. Pass a key that "
            "the sweep's measure function returned."
        )
    full_size = max(max(c["sizes"]) for c in curve_by_method.values())
    best = max([float(reference)] + [max(c[metric]) for c in curve_by_method.values()])
    methods = {}
    for method, curve in curve_by_method.items():
        methods[method] = {
            "auc": curves.curve_auc(
                curve["sizes"], curve[metric], full_size=max(full_size, 2), best=best
            ),
            "size_at_drop": {
                points(drop): curves.size_at_drop(
                    curve["sizes"], curve[metric], reference=reference, drop=drop
                )
                for drop in drops
            },
        }
    return {
        "metric": metric,
        "full_size": int(full_size),
        "best": best,
        "reference": float(reference),
        "methods": methods,
    }


def points(drop):
    """0.005 -> "0.5": a metric drop in points, as a short string key.

    Example:
    >>> points(0.01)
    '1'
    """
    return f"{100 * drop:g}"
