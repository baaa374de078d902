"""Evaluation of tag recommenders: ranked tags -> P/R/F1@k, vocabulary kept.

Every model is measured the same way, through its `recommend(token_ids, k)`
(a classifier's top-k logits, a seq2seq model's beam search) and
`vtrain.tagging.metrics.ranking_metrics_from_lists`: per-example precision, recall
and F1 at k, averaged over examples. F1@k of one example is the harmonic
mean of its P@k and R@k (0 when no recommended tag is right); see
`vtrain.tagging.metrics` for the exact definitions.

>>> import numpy as np, tensorflow as tf
>>> class FirstTags:  # always recommends tags 0, 1, 2, ... in that order
...     def recommend(self, token_ids, k):
...         return np.tile(np.arange(k, dtype="int32"), (len(token_ids), 1))
>>> labels = np.array([[1, 0, 0, 1], [0, 0, 1, 0]], "float32")
>>> dataset = tf.data.Dataset.from_tensor_slices((np.zeros((2, 3), "int32"), labels))
>>> results = ranking_results(FirstTags(), dataset.batch(1), ks=(1, 3))
>>> {name: round(value, 4) for name, value in results.items()}
... # doctest: +NORMALIZE_WHITESPACE
{'precision@1': 0.5, 'recall@1': 0.25, 'f1@1': 0.3333, 'ndcg@1': 0.5,
 'precision@3': 0.3333, 'recall@3': 0.75, 'f1@3': 0.45, 'ndcg@3': 0.5566}
"""

import keras
import numpy as np
from keras import ops

from vtrain import _keras_compat
from vtrain.layers.base import VariationalLayer
from vtrain.layers.variational_embedding import VariationalEmbedding
from vtrain.tagging import metrics

KS = (1, 3, 5)


def recommend_all(model, dataset, k, progress=False):
    """Runs `model.recommend` over a dataset of `(token_ids, multi_hot)` batches.

    Args:
        model: anything with `recommend(token_ids, k) -> [B, k]` tag indices.
        dataset: an iterable of `(token_ids, multi_hot)` batches.
        k: tags recommended per example.
        progress: show a progress bar (one step per batch).

    Returns:
        `(ranked int32 [N, k], multi_hot [N, T])` as NumPy arrays.

    Example: see the module docstring.
    """
    total = None
    if hasattr(dataset, "cardinality"):
        total = int(dataset.cardinality())
        total = total if total > 0 else None
    bar = keras.utils.Progbar(total, unit_name="batch") if progress else None
    ranked, labels = [], []
    for step, (token_ids, multi_hot) in enumerate(dataset, start=1):
        ranked.append(np.asarray(ops.convert_to_numpy(model.recommend(token_ids, k))))
        labels.append(np.asarray(multi_hot))
        if bar is not None:
            bar.update(step)
    if not ranked:
        raise ValueError("Received an empty dataset; expected at least one batch.")
    return np.concatenate(ranked).astype(np.int32), np.concatenate(labels)


def ranking_results(model, dataset, ks=KS, progress=False):
    """P@k, R@k, F1@k and NDCG@k of `model.recommend` on `dataset`, for each k.

    Returns a dict `{"precision@1": ..., "recall@1": ..., "f1@1": ...,
    "ndcg@1": ..., ...}` of per-example means (Python floats).

    Example: see the module docstring.
    """
    ranked, labels = recommend_all(model, dataset, max(ks), progress=progress)
    return metrics.ranking_metrics_from_lists(ranked, labels, ks=ks)


def tag_scores(model, dataset):
    """Every tag's score (the sigmoid of its logit) on a dataset of `(token_ids, multi_hot)`.

    For models whose call gives one logit per tag (the word classifiers).

    Returns:
        `(scores float32 [N, T], multi_hot [N, T])` as NumPy arrays.
    """
    scores, labels = [], []
    for token_ids, multi_hot in dataset:
        scores.append(ops.convert_to_numpy(ops.sigmoid(model(token_ids, training=False))))
        labels.append(np.asarray(multi_hot))
    if not scores:
        raise ValueError("Received an empty dataset; expected at least one batch.")
    return np.concatenate(scores), np.concatenate(labels)


def threshold_metrics(scores, labels, threshold):
    """Example-based P, R and F1 of the tags with `score >= threshold`.

    Per example, with `pred` the tags at or above the threshold and `true`
    its tags: P = hits / |pred| (0 when nothing is predicted), R = hits /
    |true|, F1 = 2 hits / (|pred| + |true|); each is the mean over examples,
    as the @k metrics are, so F1@threshold and F1@3 compare directly.
    `tags@threshold` is the mean number of tags predicted.

    Example:
    >>> scores = np.array([[0.9, 0.6, 0.1], [0.2, 0.7, 0.4]])
    >>> labels = np.array([[1, 0, 0], [0, 1, 1]])
    >>> threshold_metrics(scores, labels, 0.5)  # doctest: +NORMALIZE_WHITESPACE
    {'precision@threshold': 0.75, 'recall@threshold': 0.75,
     'f1@threshold': 0.6666666666666666, 'tags@threshold': 1.5}
    """
    scores, labels = np.asarray(scores), np.asarray(labels) > 0
    predicted = scores >= threshold
    hits = np.sum(predicted & labels, axis=1)
    num_predicted, num_true = predicted.sum(axis=1), labels.sum(axis=1)
    if np.any(num_true == 0):
        raise ValueError(
            "Received an example with no true tag; expected at least one "
            "per example (recall is undefined without)."
        )
    return {
        "precision@threshold": float(np.mean(hits / np.maximum(num_predicted, 1))),
        "recall@threshold": float(np.mean(hits / num_true)),
        "f1@threshold": float(np.mean(2 * hits / (num_predicted + num_true))),
        "tags@threshold": float(np.mean(num_predicted)),
    }


def best_threshold(scores, labels):
    """The score threshold that maximises example-based F1 (`threshold_metrics`).

    Exact: every distinct score is a candidate. Sweeping the threshold down
    through the sorted scores adds one (example, tag) pair at a time, which
    changes that example's F1 only; the running sum of those changes is the
    total F1 at every cut. The returned threshold lies halfway between the
    lowest score kept and the next lower score (so the same tags pass on
    these scores, with a margin either side); on ties of F1 the highest
    threshold (fewest tags) wins.

    Returns:
        `(threshold, f1)`: a float, and the mean F1 of the examples at it.

    Example:
    >>> scores = np.array([[0.9, 0.3, 0.1], [0.2, 0.7, 0.4]])
    >>> labels = np.array([[1, 0, 0], [0, 1, 1]])
    >>> threshold, f1 = best_threshold(scores, labels)  # halfway between 0.4 and 0.3
    >>> round(threshold, 3), f1
    (0.35, 1.0)
    >>> threshold_metrics(scores, labels, threshold)["f1@threshold"] == f1
    True
    """
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels) > 0
    num_examples, num_tags = scores.shape
    num_true = labels.sum(axis=1)
    if num_examples == 0 or np.any(num_true == 0):
        raise ValueError(
            "Received no example, or one with no true tag; expected "
            "examples with at least one true tag each."
        )
    flat = scores.ravel()
    order = np.argsort(-flat, kind="stable")  # all pairs, best score first
    rows = order // num_tags
    relevant = labels.ravel()[order].astype(np.int64)
    # Each pair's rank among its example's pairs, and the hits up to it.
    by_row = np.argsort(rows, kind="stable")
    grouped_rows = rows[by_row]
    starts = np.searchsorted(grouped_rows, grouped_rows, side="left")
    rank = np.empty_like(order)
    rank[by_row] = np.arange(len(order)) - starts + 1
    hits_grouped = np.cumsum(relevant[by_row])
    before_group = np.concatenate([[0], hits_grouped])[starts]
    hits = np.empty_like(order)
    hits[by_row] = hits_grouped - before_group
    true = num_true[rows]
    gain = 2 * hits / (rank + true) - 2 * (hits - relevant) / (rank - 1 + true)
    total = np.cumsum(gain)
    sorted_scores = flat[order]
    # Cut only between different scores: tied pairs pass together.
    cuts = np.flatnonzero(np.append(sorted_scores[1:] != sorted_scores[:-1], True))
    best = cuts[np.argmax(total[cuts])]
    if total[best] <= 0:
        return float(sorted_scores[0]) + 1.0, 0.0  # no tag at all is as good
    if best + 1 < len(sorted_scores):
        threshold = (sorted_scores[best] + sorted_scores[best + 1]) / 2
    else:
        threshold = sorted_scores[best]
    return float(threshold), float(total[best] / num_examples)


def vocabulary_stats(model):
    """Rows of the model's word embeddings, and how many are kept at inference.

    Counts every `VariationalEmbedding` (rows with `log_alpha < threshold`
    are kept) and every plain `keras.layers.Embedding` (all rows kept).
    Padding and "[UNK]" are rows like any other.

    Returns:
        `{"vocabulary_size": rows, "kept_vocabulary": kept rows,
        "sparsity": dropped fraction}`.

    Example:
    >>> embedding = VariationalEmbedding(4, 2, log_alpha_initializer="ones")
    >>> ids = keras.Input((3,), dtype="int32")
    >>> vocabulary_stats(keras.Model(ids, embedding(ids)))
    {'vocabulary_size': 4, 'kept_vocabulary': 4, 'sparsity': 0.0}
    """
    size = kept = 0
    for layer in _keras_compat.all_layers(model):
        if isinstance(layer, VariationalEmbedding):
            size += layer.input_dim
            kept += int(np.sum(ops.convert_to_numpy(layer.keep_mask())))
        elif isinstance(layer, keras.layers.Embedding):
            size += layer.input_dim
            kept += layer.input_dim
    return {
        "vocabulary_size": size,
        "kept_vocabulary": kept,
        "sparsity": 1.0 - kept / size if size else 0.0,
    }


def weight_stats(model):
    """Weights of the variational layers other than embeddings, and how many are kept.

    Counts the `keep_mask()` elements of every `VariationalLayer` that is
    not a `VariationalEmbedding` (e.g. `VariationalDense`: one per kernel
    weight).

    Returns:
        `{"variational_weights": n, "kept_weights": kept,
        "weight_sparsity": dropped fraction}`, or `{}` if there is none.

    Example:
    >>> from vtrain.layers.variational_dense import VariationalDense
    >>> inputs = keras.Input((3,))
    >>> weight_stats(keras.Model(inputs, VariationalDense(2)(inputs)))
    {'variational_weights': 6, 'kept_weights': 6, 'weight_sparsity': 0.0}
    >>> weight_stats(keras.Sequential([keras.layers.Dense(2)]))
    {}
    """
    size = kept = 0
    for layer in _keras_compat.all_layers(model):
        if isinstance(layer, VariationalLayer) and not isinstance(layer, VariationalEmbedding):
            mask = np.asarray(ops.convert_to_numpy(layer.keep_mask()))
            size += mask.size
            kept += int(mask.sum())
    if not size:
        return {}
    return {"variational_weights": size, "kept_weights": kept, "weight_sparsity": 1.0 - kept / size}


class RankingValidation(keras.callbacks.Callback):
    """Adds `val_precision_at_k`, `val_recall_at_k`, `val_f1_at_k` to the epoch logs.

    Computed at every epoch end with `recommend` on `dataset` (the
    validation split), so the best epoch can be chosen on the ranking
    metric itself (`ModelCheckpoint(monitor="val_f1_at_3", mode="max")`).
    Put it before the callbacks that read the logs.

    Args:
        dataset: `(token_ids, multi_hot)` batches.
        k: the cut-off.

    Example:
    >>> callback = RankingValidation(dataset=[], k=3)
    >>> callback.monitor
    'val_f1_at_3'
    """

    def __init__(self, dataset, k=3):
        super().__init__()
        self.dataset = dataset
        self.k = k
        self.monitor = f"val_f1_at_{k}"

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        results = ranking_results(self.model, self.dataset, ks=(self.k,))
        for name in ("precision", "recall", "f1"):
            logs[f"val_{name}_at_{self.k}"] = results[f"{name}@{self.k}"]


class VocabularyLogger(keras.callbacks.Callback):
    """Adds `sparsity` and `kept_vocabulary` (see `vocabulary_stats`) to the epoch logs.

    Example:
    >>> logs = {}
    >>> callback = VocabularyLogger()
    >>> callback.set_model(keras.Sequential([keras.layers.Embedding(5, 2)]))
    >>> callback.on_epoch_end(0, logs)
    >>> logs
    {'sparsity': 0.0, 'kept_vocabulary': 5}
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        stats = vocabulary_stats(self.model)
        logs["sparsity"] = stats["sparsity"]
        logs["kept_vocabulary"] = stats["kept_vocabulary"]
        weights = weight_stats(self.model)
        if weights:
            logs["weight_sparsity"] = weights["weight_sparsity"]


def format_table(results, ks=KS):
    """The test metrics of a `results.json` dict as a small text table.

    Example:
    >>> results = {"test": {f"{m}@{k}": 0.5 for m in ("precision", "recall", "f1")
    ...                     for k in (1, 3)},
    ...            "kept_vocabulary": 3, "vocabulary_size": 4, "sparsity": 0.25,
    ...            "seconds": 12.0}
    >>> print(format_table(results, ks=(1, 3)))
    test           @1      @3
    precision  0.5000  0.5000
    recall     0.5000  0.5000
    f1         0.5000  0.5000
    vocabulary: 3 of 4 rows kept (sparsity 25.0%)
    time: 12 s
    """
    test = results["test"]
    if all(f"f1@{k}" in test for k in ks):
        lines = ["test     " + "".join(f"{'@' + str(k):>8}" for k in ks)]
        for name in ("precision", "recall", "f1"):
            lines.append(f"{name:<9}" + "".join(f"{test[f'{name}@{k}']:8.4f}" for k in ks))
    else:  # a model with its own evaluate_split (e.g. the VAE)
        lines = ["test"] + [
            f"{name:<18} {value:.4f}" if isinstance(value, float) else f"{name:<18} {value}"
            for name, value in test.items()
        ]
    if "kept_weights" in results:
        lines.append(
            f"variational weights: {results['kept_weights']:,} of "
            f"{results['variational_weights']:,} kept "
            f"(sparsity {100 * results['weight_sparsity']:.1f}%)"
        )
    if "f1@threshold" in test:
        lines.append(
            f"f1 at score >= {results['threshold']:.3f} (chosen on validation): "
            f"{test['f1@threshold']:.4f}, {test['tags@threshold']:.1f} tags an example"
        )
    if "kept_vocabulary" in results:
        lines.append(
            f"vocabulary: {results['kept_vocabulary']:,} of "
            f"{results['vocabulary_size']:,} rows kept "
            f"(sparsity {100 * results['sparsity']:.1f}%)"
        )
    if "num_features" in results:
        lines.append(f"features: {results['num_features']:,} TF-IDF n-grams")
    lines.append(f"time: {results['seconds']:.0f} s")
    return "\n".join(lines)


def format_comparison(named_results, ks=KS):
    """Test recall, NDCG, precision and F1 at k of several runs, side by side.

    Args:
        named_results: `{column name: results dict}` (as in `results.json`).
        ks: the cut-offs shown.

    Example:
    >>> a = {"test": {f"{m}@{k}": 0.5 for m in ("precision", "recall", "f1", "ndcg")
    ...               for k in (1, 5)}}
    >>> print(format_comparison({"triplet": a, "pooled": a}, ks=(5,)))
    test          triplet    pooled
    recall@5       0.5000    0.5000
    ndcg@5         0.5000    0.5000
    precision@5    0.5000    0.5000
    f1@5           0.5000    0.5000
    """
    names = list(named_results)
    width = max(10, *(len(name) + 2 for name in names))
    keys = [f"{metric}@{k}" for metric in ("recall", "ndcg", "precision", "f1") for k in ks]
    if all("f1@threshold" in results["test"] for results in named_results.values()):
        keys.append("f1@threshold")  # each run's own validation-chosen threshold
    label = max(11, *(len(key) for key in keys))
    lines = [f"{'test':<{label}}" + "".join(f"{name:>{width}}" for name in names)]
    for key in keys:
        lines.append(
            f"{key:<{label}}"
            + "".join(f"{named_results[name]['test'][key]:{width}.4f}" for name in names)
        )
    return "\n".join(lines)
