"""Vocabulary selection: rank words, sweep vocabulary sizes, export a pruned model.

A trained tag classifier reads token ids from a `TextVectorization` whose
vocabulary is `["", "[UNK]", word_2, word_3, ...]` (padding, out of
vocabulary, then the words by training frequency). This module:

- ranks the words (ids >= 2) three ways: `variational_ranking` (ascending
  `log_alpha` of a `VariationalEmbedding`), `frequency_ranking` and
  `tfidf_ranking`;
- measures a model with only the first `size` words of a ranking kept
  (`mask_embedding`, `sweep`) and summarises the curves (`summarise`: AUC
  and vocabulary size at a drop of 0.5, 1 and 3 F1@3 points);
- writes a smaller model whose vocabulary is the kept words only
  (`export_pruned`, `load_pruned`), with the masked model's scores.

Special ids. Sizes count *words*: ids 0 and 1 are never in a ranking.
Padding (id 0) is left out of the pooling by the models, so its row is
kept as it is. "[UNK]" (id 1) is always treated as dropped (its row is
zero when masking and in the export): in the pruned model every dropped
word becomes "[UNK]", and the masked model gives a dropped word a zero
vector that still counts as a token (the models pool over ids != 0). The
two agree exactly only if the "[UNK]" vector is zero too.

Command (a finished run of `vtrain.main`):

    python -m vtrain.compress --workdir=WORKDIR [--baseline_workdir=WORKDIR/baseline]

writes `WORKDIR/vocabulary.json` (curves and summary), `vocabulary.png`,
`vocabulary.md` and `WORKDIR/pruned/` (the model at its own threshold).

>>> import numpy as np
>>> ids = [np.array([[2, 3, 3, 0], [4, 2, 0, 0]])]
>>> tfidf_ranking(ids, vocabulary_size=5).tolist()
[3, 2, 4]
>>> frequency_ranking(["", "[UNK]", "the", "vim"]).tolist()
[2, 3]
"""

import contextlib
import json
import os
import sys
import tempfile

import keras
import numpy as np
from keras import ops

from vtrain import curves, evaluate, io
from vtrain.layers.variational_embedding import VariationalEmbedding

PADDING_ID = 0
OOV_ID = 1
FIRST_WORD_ID = 2
DROPS = (0.005, 0.01, 0.03)  # F1@3 drops of 0.5, 1 and 3 points


# --------------------------------------------------------------------------
# Rankings: word ids (>= 2), best first.
# --------------------------------------------------------------------------


def variational_ranking(layer):
    """Word ids sorted by ascending clipped `log_alpha` (least noisy first).

    Ties keep id order (i.e. the more frequent word first), so the ranking
    never depends on the sort algorithm.

    Args:
        layer: a built `VariationalEmbedding`.

    Returns:
        int64 array of the ids 2 .. V-1.

    Example:
    >>> layer = VariationalEmbedding(5, 2)
    >>> layer.build()
    >>> _ = layer.log_alpha.assign(np.array([[0.], [0.], [4.], [-1.], [4.]]))
    >>> variational_ranking(layer).tolist()
    [3, 2, 4]
    """
    if not isinstance(layer, VariationalEmbedding):
        raise TypeError(
            f"variational_ranking received a {type(layer).__name__}; expected a "
            "vtrain.layers.VariationalEmbedding (e.g. model.embedding of a model "
            "trained with variational=True). Use frequency_ranking for a plain "
            "embedding."
        )
    log_alpha = ops.convert_to_numpy(layer.clipped_log_alpha())[FIRST_WORD_ID:, 0]
    return np.argsort(log_alpha, kind="stable").astype(np.int64) + FIRST_WORD_ID


def frequency_ranking(vocabulary):
    """Word ids, most frequent first: the vocabulary's own order.

    `vtrain.data.pipeline` builds the vocabulary sorted by training count
    (TextVectorization's order), so this is ids 2 .. V-1 in order.

    Args:
        vocabulary: a `TextVectorization` or its `get_vocabulary()` list
            (id 0 "", id 1 "[UNK]").

    Example:
    >>> frequency_ranking(["", "[UNK]", "the", "a", "vim"]).tolist()
    [2, 3, 4]
    """
    vocabulary = _vocabulary_list(vocabulary)
    return np.arange(FIRST_WORD_ID, len(vocabulary), dtype=np.int64)


def tfidf_ranking(token_id_batches, vocabulary_size):
    """Word ids by decreasing mean TF-IDF over the training documents.

    Per document d and word w: tf = count(w, d) / tokens(d) (non-padding
    tokens, "[UNK]" included) and idf = ln((1 + N) / (1 + df(w))) + 1, the
    smoothed idf of scikit-learn's `TfidfVectorizer`. A word's score is its
    TF-IDF averaged over all N documents (0 where absent), i.e. the column
    sum of the TF-IDF matrix divided by N, the usual way to rank features
    by TF-IDF. (The max over documents would favour words that fill one
    short text; the mean rewards words that are both frequent and
    specific.) Ties keep id order (more frequent first).

    Args:
        token_id_batches: iterable of int `[B, L]` token id arrays (the
            training split; 0 is padding), or of `(token_ids, labels)`.
        vocabulary_size: V, ids are in [0, V).

    Returns:
        int64 array of the ids 2 .. V-1.

    Example (hand-computed in tests/test_compress.py):
    >>> ids = [np.array([[2, 3, 3, 0], [4, 2, 0, 0]])]
    >>> tfidf_ranking(ids, vocabulary_size=5).tolist()
    [3, 2, 4]
    """
    tf_sum = np.zeros(vocabulary_size, np.float64)
    df = np.zeros(vocabulary_size, np.int64)
    num_documents = 0
    for batch in token_id_batches:
        if isinstance(batch, (tuple, list)):
            batch = batch[0]
        ids = np.asarray(ops.convert_to_numpy(batch)).astype(np.int64)
        if ids.ndim != 2 or (ids.size and (ids.min() < 0 or ids.max() >= vocabulary_size)):
            raise ValueError(
                f"tfidf_ranking received a batch of shape {ids.shape} with ids in "
                f"[{ids.min() if ids.size else 0}, {ids.max() if ids.size else 0}]; "
                f"expected int [B, L] ids in [0, {vocabulary_size}). Pass the "
                "training token ids and the vocabulary size they were made with."
            )
        lengths = np.maximum((ids != PADDING_ID).sum(axis=1), 1)
        rows = np.repeat(np.arange(len(ids)), ids.shape[1])
        flat = ids.reshape(-1)
        real = flat != PADDING_ID
        # One (document, word) pair per distinct word of a document, with its
        # count: no dense [B, V] matrix.
        pairs, counts = np.unique(rows[real] * vocabulary_size + flat[real],
                                  return_counts=True)
        row, word = pairs // vocabulary_size, pairs % vocabulary_size
        np.add.at(tf_sum, word, counts / lengths[row])
        np.add.at(df, word, 1)
        num_documents += len(ids)
    if num_documents == 0:
        raise ValueError("tfidf_ranking received no documents; expected the "
                         "training split's token ids.")
    idf = np.log((1.0 + num_documents) / (1.0 + df)) + 1.0
    # tf_sum[w] * idf[w] = sum over documents of TF-IDF, since idf is per word.
    score = tf_sum * idf / num_documents
    return np.argsort(-score[FIRST_WORD_ID:], kind="stable").astype(np.int64) + FIRST_WORD_ID


# --------------------------------------------------------------------------
# Masking and sweeping.
# --------------------------------------------------------------------------


def embedding_layer(model):
    """The model's one word embedding (`VariationalEmbedding` or `Embedding`).

    Example:
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Embedding(5, 2)])
    >>> type(embedding_layer(model)).__name__
    'Embedding'
    """
    found = [
        layer for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, (VariationalEmbedding, keras.layers.Embedding))
    ]
    if len(found) != 1:
        raise ValueError(
            f"{type(model).__name__} has {len(found)} word embeddings "
            f"({[layer.name for layer in found]}); expected exactly one "
            "VariationalEmbedding or keras.layers.Embedding to prune."
        )
    return found[0]


def keep_matrix_rows(keep_ids, vocabulary_size):
    """Boolean `[V]`: rows a masked embedding keeps (padding + `keep_ids`).

    Example:
    >>> keep_matrix_rows([3], 5).tolist()
    [True, False, False, True, False]
    """
    keep_ids = _check_keep_ids(keep_ids, vocabulary_size)
    keep = np.zeros(vocabulary_size, bool)
    keep[PADDING_ID] = True
    keep[keep_ids] = True
    return keep


@contextlib.contextmanager
def mask_embedding(model, keep_ids):
    """Within the block, every embedding row but padding and `keep_ids` is zero.

    "[UNK]" (id 1) is zeroed too (see the module docstring); the weights
    are restored when the block exits, even on an error.

    Args:
        model: a model with one `VariationalEmbedding` or `Embedding`.
        keep_ids: word ids (>= 2) to keep.

    Example:
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Embedding(4, 1)])
    >>> with mask_embedding(model, [3]):
    ...     (model.layers[0].embeddings.numpy()[:, 0] != 0).tolist()
    [True, False, False, True]
    >>> bool(np.all(model.layers[0].embeddings.numpy() != 0))
    True
    """
    layer = embedding_layer(model)
    if not layer.built:
        raise ValueError(
            f"mask_embedding received {type(model).__name__} whose embedding "
            "has no weights yet; expected a built model. Call the model on a "
            "batch of token ids (or load trained weights) first."
        )
    original = ops.convert_to_numpy(layer.embeddings)
    keep = keep_matrix_rows(keep_ids, original.shape[0])
    layer.embeddings.assign(original * keep[:, None].astype(original.dtype))
    try:
        yield model
    finally:
        layer.embeddings.assign(original)


def sweep(model, dataset, ranking, sizes, k=3):
    """F1@k and P@1 of `model` with only the first `size` words of `ranking` kept.

    Measured through `model.recommend` and `vtrain.evaluate.ranking_results`.
    A `VariationalEmbedding` still drops its rows with `log_alpha >=
    threshold`: the curve is that of the model as it predicts, so at the
    full size every ranking gives the model's own score.

    Args:
        model: a classifier with `recommend(token_ids, k)`.
        dataset: `(token_ids, multi_hot)` batches (e.g. the test split).
        ranking: word ids, best first (see the `*_ranking` functions).
        sizes: vocabulary sizes (numbers of words), each in [1, len(ranking)].
        k: the F1 cut-off.

    Returns:
        `{"sizes": [...], "f1_at_<k>": [...], "precision_at_1": [...]}`.

    Example:
    >>> import tensorflow as tf
    >>> from vtrain.models.classifier import PooledClassifier
    >>> model = PooledClassifier(vocabulary_size=6, num_tags=4, embedding_dim=2)
    >>> data = tf.data.Dataset.from_tensors((np.array([[2, 3, 5, 0]]),
    ...                                      np.array([[1., 0., 1., 0.]])))
    >>> curve = sweep(model, data, ranking=[5, 2, 3, 4], sizes=[1, 4])
    >>> sorted(curve), curve["sizes"]
    (['f1_at_3', 'precision_at_1', 'sizes'], [1, 4])
    """
    ranking = np.asarray(ranking, np.int64)
    sizes = [int(size) for size in sizes]
    if not sizes or min(sizes) < 1 or max(sizes) > len(ranking):
        raise ValueError(
            f"sweep received sizes from {min(sizes, default=None)} to "
            f"{max(sizes, default=None)}; expected sizes in [1, {len(ranking)}] "
            "(the number of ranked words). Use curves.log_spaced_sizes(len(ranking))."
        )
    # Materialise the batches once: they are read once per size.
    batches = [(np.asarray(x), np.asarray(y)) for x, y in dataset]
    if batches and not embedding_layer(model).built:
        model(batches[0][0][:1])  # creates the weights to mask
    ks = (1,) if k == 1 else (1, k)
    curve = {"sizes": sizes, f"f1_at_{k}": [], "precision_at_1": []}
    for size in sizes:
        with mask_embedding(model, ranking[:size]):
            results = evaluate.ranking_results(model, batches, ks=ks)
        curve[f"f1_at_{k}"].append(results[f"f1@{k}"])
        curve["precision_at_1"].append(results["precision@1"])
    return curve


def summarise(curve_by_method, reference_f1, drops=DROPS, k=3):
    """AUC and vocabulary size at each F1 drop, per ranking method.

    x = log10(size) / log10(full size), y = F1@k / best F1@k, where the
    full size is the largest size measured by any method and the best is
    the highest F1@k of any curve or the reference, so all methods share
    the axes (`vtrain.curves.curve_auc`). Sizes at a drop are
    `vtrain.curves.size_at_drop` against `reference_f1` (e.g. the
    full-vocabulary model's F1@k): the smallest size from which the curve
    stays within `drop` of it, or None.

    Args:
        curve_by_method: `{method: sweep(...) result}`.
        reference_f1: the F1@k that the drops are measured from.
        drops: F1 drops (0.01 = one point).
        k: the cut-off the curves were measured at.

    Returns:
        `{"full_size", "best_f1", "reference_f1", "methods": {method:
        {"auc": float, "size_at_drop": {"0.5": int or None, ...}}}}`,
        drops keyed in F1 points.

    Example:
    >>> curve = {"sizes": [1, 10, 100], "f1_at_3": [0.2, 0.6, 0.8]}
    >>> summary = summarise({"frequency": curve}, reference_f1=0.8, drops=(0.25,))
    >>> summary["methods"]["frequency"]
    {'auc': 0.6875, 'size_at_drop': {'25': 10}}
    """
    key = f"f1_at_{k}"
    if not curve_by_method:
        raise ValueError("summarise received no curves; expected {method: sweep result}.")
    full_size = max(max(c["sizes"]) for c in curve_by_method.values())
    best = max([float(reference_f1)] + [max(c[key]) for c in curve_by_method.values()])
    methods = {}
    for method, curve in curve_by_method.items():
        methods[method] = {
            "auc": curves.curve_auc(curve["sizes"], curve[key],
                                    full_size=max(full_size, 2), best=best),
            "size_at_drop": {
                _points(drop): curves.size_at_drop(curve["sizes"], curve[key],
                                                   reference=reference_f1, drop=drop)
                for drop in drops
            },
        }
    return {"full_size": int(full_size), "best_f1": best,
            "reference_f1": float(reference_f1), "methods": methods}


def _points(drop):
    """0.005 -> "0.5": an F1 drop in points, as a short string key."""
    return f"{100 * drop:g}"


# --------------------------------------------------------------------------
# Pruned export.
# --------------------------------------------------------------------------

MODEL_FILE = "model.keras"
VOCABULARY_FILE = "vocabulary.json"


def export_pruned(model, vectorizer, keep_ids, path):
    """Writes a model whose vocabulary is `keep_ids` only, with the same scores.

    The new `TextVectorization` has the kept words (in their original
    order, so ids are remapped to 2, 3, ...); every other word becomes
    "[UNK]", whose row is zero. The classifier is rebuilt from its config
    with `vocabulary_size=len(keep_ids) + 2`; its embedding holds the
    padding row, a zero "[UNK]" row and the kept rows (and their
    `log_alpha`); every other weight is copied unchanged. On raw texts,
    `pruned(new_vectorizer(texts))` equals `model(vectorizer(texts))` under
    `mask_embedding(model, keep_ids)`.

    Files (each written atomically): `PATH/model.keras` (no optimizer
    state) and `PATH/vocabulary.json` (the vectorizer's config with the
    kept words).

    Args:
        model: a `vtrain.models.classifier.TagClassifier`.
        vectorizer: the `TextVectorization` the model was trained with.
        keep_ids: word ids (>= 2) to keep.
        path: output directory (created if missing).

    Returns:
        `{"model_bytes_before", "model_bytes_after", "embedding_rows_before",
        "embedding_rows_after", "embedding_bytes_before",
        "embedding_bytes_after"}`; "before" is the full model saved the
        same way.

    Example: see tests/test_compress.py (a round trip in a fresh process).
    """
    vocabulary = _vocabulary_list(vectorizer)
    layer = embedding_layer(model)
    if layer.input_dim != len(vocabulary):
        raise ValueError(
            f"The model's embedding has {layer.input_dim} rows but the vectorizer "
            f"has {len(vocabulary)} ids; expected the same. Pass the vectorizer "
            "the model was trained with."
        )
    keep_ids = np.sort(_check_keep_ids(keep_ids, len(vocabulary)))
    pruned = _pruned_model(model, keep_ids)
    config = _vectorizer_config(vectorizer)
    config["vocabulary"] = [vocabulary[i] for i in keep_ids]
    os.makedirs(path, exist_ok=True)
    model_path = os.path.join(path, MODEL_FILE)
    # A .keras file holds the optimizer's state of a compiled model whatever
    # include_optimizer says; the pruned model is never compiled, so the
    # "before" size is that of an uncompiled copy too.
    io.save_model(pruned, model_path)
    io.atomic_write_json(os.path.join(path, VOCABULARY_FILE), {"vectorizer": config})
    with tempfile.TemporaryDirectory() as scratch:
        full_path = os.path.join(scratch, MODEL_FILE)
        _uncompiled_copy(model).save(full_path)
        before = os.path.getsize(full_path)
    itemsize = np.dtype(layer.embeddings.dtype).itemsize
    return {
        "model_bytes_before": before,
        "model_bytes_after": os.path.getsize(model_path),
        "embedding_rows_before": int(layer.input_dim),
        "embedding_rows_after": int(len(keep_ids) + FIRST_WORD_ID),
        "embedding_bytes_before": int(layer.input_dim * layer.output_dim * itemsize),
        "embedding_bytes_after": int((len(keep_ids) + FIRST_WORD_ID)
                                     * layer.output_dim * itemsize),
    }


def load_pruned(path):
    """`(model, vectorizer)` written by `export_pruned` into `path`.

    Score raw texts with `model(vectorizer(texts))`.
    """
    # Registers the vtrain classes with Keras before deserialising.
    import vtrain.models.classifier  # noqa: F401
    model_path = os.path.join(path, MODEL_FILE)
    if not os.path.isfile(model_path):
        raise FileNotFoundError(
            f"load_pruned received {path!r}, which has no {MODEL_FILE}; expected "
            "a directory written by vtrain.compress.export_pruned."
        )
    model = keras.saving.load_model(model_path, compile=False)
    with open(os.path.join(path, VOCABULARY_FILE)) as f:
        config = json.load(f)["vectorizer"]
    return model, keras.layers.TextVectorization.from_config(config)


def _uncompiled_copy(model):
    """A fresh instance of `model`'s class with the same weights, no optimizer."""
    copy = type(model).from_config(model.get_config())
    copy(np.zeros((1, 1), "int32"))  # builds the weights to copy into
    copy.set_weights(model.get_weights())
    return copy


def _pruned_model(model, keep_ids):
    """A fresh instance of `model`'s class with the smaller embedding."""
    config = model.get_config()
    if "vocabulary_size" not in config:
        raise ValueError(
            f"{type(model).__name__}.get_config() has no vocabulary_size; expected "
            "a vtrain TagClassifier (its size is a constructor argument)."
        )
    config["vocabulary_size"] = len(keep_ids) + FIRST_WORD_ID
    pruned = type(model).from_config(config)
    pruned(np.zeros((1, 1), "int32"))  # builds the weights to copy into
    old_layer = embedding_layer(model)
    rows = np.concatenate([[PADDING_ID, OOV_ID], keep_ids])
    for old, new in zip(model.weights, pruned.weights):
        value = ops.convert_to_numpy(old)
        if any(old is w for w in old_layer.weights):
            value = value[rows].copy()
            if old is old_layer.embeddings:
                value[OOV_ID] = 0.0  # every dropped word maps here
        if tuple(value.shape) != tuple(new.shape):
            raise ValueError(
                f"Cannot copy weight {old.path} of shape {value.shape} into "
                f"{new.path} of shape {tuple(new.shape)}; expected the rebuilt "
                "model to have the same layers in the same order."
            )
        new.assign(value)
    return pruned


def _vectorizer_config(vectorizer):
    if not isinstance(vectorizer, keras.layers.TextVectorization):
        raise TypeError(
            f"Received a {type(vectorizer).__name__}; expected the "
            "keras.layers.TextVectorization the model was trained with "
            "(TagData.vectorizer)."
        )
    config = vectorizer.get_config()
    config.pop("vocabulary_size", None)  # derived from the vocabulary
    config["max_tokens"] = None
    return config


def _vocabulary_list(vocabulary):
    if hasattr(vocabulary, "get_vocabulary"):
        vocabulary = vocabulary.get_vocabulary()
    vocabulary = [str(word) for word in vocabulary]
    if vocabulary[:2] != ["", "[UNK]"]:
        raise ValueError(
            f"Received a vocabulary starting {vocabulary[:2]!r}; expected "
            "['', '[UNK]', ...] (padding, out-of-vocabulary, then words), as "
            "TextVectorization(output_mode='int') makes it."
        )
    return vocabulary


def _check_keep_ids(keep_ids, vocabulary_size):
    keep_ids = np.asarray(keep_ids, np.int64).reshape(-1)
    bad = keep_ids[(keep_ids < FIRST_WORD_ID) | (keep_ids >= vocabulary_size)]
    if bad.size:
        raise ValueError(
            f"Received keep id {bad[0]}; expected word ids in [{FIRST_WORD_ID}, "
            f"{vocabulary_size}). Ids 0 (padding) and 1 ([UNK]) are handled by "
            "the masking itself; leave them out."
        )
    if len(np.unique(keep_ids)) != len(keep_ids):
        raise ValueError("Received repeated keep ids; expected each word id once.")
    return keep_ids


# --------------------------------------------------------------------------
# The command: sweep a finished run, write the curves, plot, table and export.
# --------------------------------------------------------------------------


def compress_workdir(workdir, num_sizes=100, split="test", k=3, baseline_workdir=None):
    """Runs `compress_run` on a finished run of `vtrain.main`.

    Loads `WORKDIR/checkpoints/best.keras` and rebuilds the run's data from
    `WORKDIR/config.json` (the pipeline is deterministic: same vocabulary,
    same splits), then writes the reports of `compress_run` into WORKDIR.

    With `baseline_workdir` (a finished non-variational run on the same
    data, e.g. WORKDIR/baseline of `vtrain.main --baseline=...`), the
    frequency and TF-IDF curves and the reference F1 are the baseline's:
    its report is read, or first written by `compress_workdir` on it when
    it is missing or was measured with other `num_sizes`, `split` or `k`.

    Returns the dict written to `WORKDIR/vocabulary.json`.
    """
    baseline = None
    if baseline_workdir:
        baseline = baseline_report(baseline_workdir, num_sizes, split, k)
    import ml_collections

    from vtrain import train
    from vtrain.models import classifier  # noqa: F401  (registers the classes)

    workdir = os.path.abspath(workdir)
    config_path = os.path.join(workdir, "config.json")
    model_path = os.path.join(workdir, "checkpoints", "best.keras")
    for needed in (config_path, model_path):
        if not os.path.isfile(needed):
            raise FileNotFoundError(
                f"{needed} is missing; expected a workdir of a run started by "
                "`python -m vtrain.main --config=... --workdir=...` that has "
                "saved its best checkpoint."
            )
    with open(config_path) as f:
        config = ml_collections.ConfigDict(json.load(f))
    data = train.load_data(config)
    model = keras.saving.load_model(model_path, compile=False)
    return compress_run(model, data, workdir, num_sizes=num_sizes, split=split, k=k,
                        baseline=baseline)


def baseline_report(workdir, num_sizes=100, split="test", k=3):
    """The report of the finished run in `workdir`, measured with these settings.

    Read from `WORKDIR/vocabulary.json`, or (re)computed by `compress_workdir`
    when it is missing or was measured with another `num_sizes`, `split` or
    `k`.
    """
    try:
        report = read_report(workdir)
    except FileNotFoundError:
        report = None
    wanted = {"num_sizes": num_sizes, "split": split, "k": k}
    if report is None or any(report.get(key) != value for key, value in wanted.items()):
        report = compress_workdir(workdir, num_sizes=num_sizes, split=split, k=k)
    return report


def compress_run(model, data, workdir, num_sizes=100, split="test", k=3,
                 baseline=None):
    """Sweeps the rankings of a trained model and writes the reports into `workdir`.

    Ranks the words (variational if the model has a `VariationalEmbedding`,
    frequency, TF-IDF on the training split), measures each ranking at
    about `num_sizes` log-spaced vocabulary sizes on `split`, and writes:

    - `vocabulary.json`: curves, summary, export sizes, the words each
      ranking keeps first and drops first;
    - `vocabulary.png`: F1@k against the vocabulary size (log x);
    - `vocabulary.md`: the table (`markdown_table`);
    - `pruned/`: the model with the words its own threshold keeps
      (`export_pruned`), and the max score difference of the reloaded
      pruned model against the masked one on `split`.

    Without `baseline`, every ranking is applied to `model` and the drops
    are measured from its own full-vocabulary F1. With `baseline` (the
    report of a non-variational run on the same data, e.g.
    `read_report(WORKDIR/baseline)`), the frequency and TF-IDF curves are
    the baseline's (its model, its masks) and the drops, the threshold's
    included, are measured from the baseline's full-vocabulary F1: the
    comparison the reference work makes.

    Args:
        model: a trained `vtrain.models.classifier.TagClassifier`.
        data: its `vtrain.data.pipeline.TagData`.
        workdir: output folder.
        num_sizes: log-spaced sizes per ranking (`curves.log_spaced_sizes`).
        split: "test" or "validation".
        k: the F1 cut-off.
        baseline: None, or a report of `compress_run` measured with the
            same `num_sizes`, `split` and `k` on the same vocabulary.

    Returns:
        The dict written to `vocabulary.json`.
    """
    layer = embedding_layer(model)
    # Read the split once: it is evaluated once per ranking and size, then
    # at the threshold and against the exported model.
    dataset = [(np.asarray(x), np.asarray(y)) for x, y in getattr(data, split)]
    num_words = data.vocabulary_size - FIRST_WORD_ID
    sizes = curves.log_spaced_sizes(num_words, num=num_sizes)
    if baseline is not None:
        _check_baseline(baseline, sizes, split, k)  # before any evaluation
    rankings = {}
    if isinstance(layer, VariationalEmbedding):
        rankings["variational"] = variational_ranking(layer)
    if baseline is None:
        rankings["frequency"] = frequency_ranking(data.vocabulary)
        rankings["tfidf"] = tfidf_ranking(data.train, data.vocabulary_size)
    full = evaluate.ranking_results(model, dataset, ks=(1, k))
    curve_by_method = {
        method: sweep(model, dataset, ranking, sizes, k=k)
        for method, ranking in rankings.items()
    }
    first = {method: [data.vocabulary[i] for i in ranking[:30]]
             for method, ranking in rankings.items()}
    last = {method: [data.vocabulary[i] for i in ranking[-30:][::-1]]
            for method, ranking in rankings.items()}
    reference = full[f"f1@{k}"]
    if baseline is not None:
        for method in ("frequency", "tfidf"):
            curve_by_method[method] = baseline["curves"][method]
            first[method] = baseline["kept_first"][method]
            last[method] = baseline["dropped_first"][method]
        reference = baseline["full_vocabulary"][f"f1_at_{k}"]
    summary = summarise(curve_by_method, reference_f1=reference, k=k)

    keep_ids = np.arange(FIRST_WORD_ID, data.vocabulary_size)
    if isinstance(layer, VariationalEmbedding):
        keep = ops.convert_to_numpy(layer.keep_mask())
        keep_ids = keep_ids[keep[FIRST_WORD_ID:]]
    pruned_dir = os.path.join(workdir, "pruned")
    export = export_pruned(model, data.vectorizer, keep_ids, pruned_dir)
    with mask_embedding(model, keep_ids):
        threshold = evaluate.ranking_results(model, dataset, ks=(1, k))
    export.update({
        "kept_words": int(len(keep_ids)),
        "num_words": int(num_words),
        f"{split}_f1_at_{k}": threshold[f"f1@{k}"],
        "max_abs_score_difference": _export_difference(
            model, keep_ids, pruned_dir, dataset),
    })

    report = {
        "workdir": os.path.abspath(workdir), "split": split, "k": k,
        "num_sizes": int(num_sizes),
        "full_vocabulary": {f"f1_at_{k}": full[f"f1@{k}"],
                            "precision_at_1": full["precision@1"]},
        "baseline": None if baseline is None else {
            "workdir": baseline["workdir"],
            "full_vocabulary": baseline["full_vocabulary"]},
        "curves": curve_by_method, "summary": summary, "pruned": export,
        "kept_first": first, "dropped_first": last,
    }
    io.atomic_write_json(os.path.join(workdir, REPORT_FILE), report)
    io.atomic_write_text(os.path.join(workdir, "vocabulary.md"), markdown_table(report))
    plot_curves(report, os.path.join(workdir, "vocabulary.png"))
    return report


REPORT_FILE = "vocabulary.json"


def read_report(workdir):
    """The `vocabulary.json` report that `compress_run` wrote into `workdir`.

    Raises:
        FileNotFoundError: `workdir` has no report yet.
    """
    path = os.path.join(workdir, REPORT_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} is missing; expected the report of a finished classifier "
            "run. Write it with `python -m vtrain.compress --workdir="
            f"{workdir}` (or train the run with `python -m vtrain.main`)."
        )
    with open(path) as f:
        return json.load(f)


def _check_baseline(baseline, sizes, split, k):
    """Raises unless `baseline` was measured on the same sizes, split and k."""
    expected = {"split": split, "k": k}
    for key, value in expected.items():
        if baseline.get(key) != value:
            raise ValueError(
                f"The baseline report ({baseline.get('workdir')}) has {key}="
                f"{baseline.get(key)!r}; expected {value!r}, as in this run. "
                f"Re-run vtrain.compress on the baseline with --{key}={value}."
            )
    missing = [m for m in ("frequency", "tfidf") if m not in baseline.get("curves", {})]
    if missing:
        raise ValueError(
            f"The baseline report ({baseline.get('workdir')}) has no {missing} "
            "curves; expected a compress_run report of a full-vocabulary model."
        )
    measured = list(baseline["curves"]["frequency"]["sizes"])
    if measured != [int(size) for size in sizes]:
        raise ValueError(
            f"The baseline report ({baseline.get('workdir')}) was measured at "
            f"{len(measured)} sizes up to {max(measured)} words; expected the "
            f"{len(sizes)} sizes up to {int(sizes[-1])} of this run. Train both "
            "on the same data config and compress them with the same num_sizes."
        )


def _export_difference(model, keep_ids, pruned_dir, dataset):
    """Max |score| difference, pruned (reloaded) against masked, on `dataset`'s ids.

    The pruned model reads ids of the pruned vocabulary: the dataset's ids
    are remapped (kept word -> its new id, any other word -> "[UNK]"),
    which is what the new vectorizer does to the raw texts.
    """
    pruned, _ = load_pruned(pruned_dir)
    remap = np.full(embedding_layer(model).input_dim, OOV_ID, np.int64)
    remap[PADDING_ID] = PADDING_ID
    remap[np.sort(keep_ids)] = np.arange(len(keep_ids)) + FIRST_WORD_ID
    worst = 0.0
    with mask_embedding(model, keep_ids):
        for token_ids, _ in dataset:
            ids = np.asarray(token_ids)
            masked = ops.convert_to_numpy(model(ids, training=False))
            small = ops.convert_to_numpy(pruned(remap[ids], training=False))
            worst = max(worst, float(np.max(np.abs(masked - small))))
    return worst


def markdown_table(report):
    """The report of `compress_workdir` as a Markdown table.

    Example:
    >>> report = {"split": "test", "k": 3,
    ...     "full_vocabulary": {"f1_at_3": 0.5, "precision_at_1": 0.6},
    ...     "summary": {"full_size": 100, "methods": {"frequency": {
    ...         "auc": 0.7, "size_at_drop": {"0.5": 50, "1": 20, "3": None}}}},
    ...     "pruned": {"kept_words": 40, "num_words": 100, "test_f1_at_3": 0.49,
    ...                "model_bytes_before": 2000, "model_bytes_after": 900}}
    >>> print(markdown_table(report))  # doctest: +NORMALIZE_WHITESPACE
    F1@3 on the test split; vocabulary sizes in words (full: 100).
    <BLANKLINE>
    | method | AUC | words at -0.5 pt | words at -1 pt | words at -3 pt |
    |---|---|---|---|---|
    | frequency | 0.7000 | 50 | 20 | never |
    <BLANKLINE>
    Full vocabulary: F1@3 0.5000, P@1 0.6000.
    At the model's own threshold: 40 of 100 words kept (40.0%), F1@3 0.4900; \
pruned model file 2,000 -> 900 bytes.
    """
    k, split = report["k"], report["split"]
    summary = report["summary"]
    methods = summary["methods"]
    drops = list(next(iter(methods.values()))["size_at_drop"])
    lines = [
        f"F1@{k} on the {split} split; vocabulary sizes in words "
        f"(full: {summary['full_size']:,}).",
        "",
        "| method | AUC | " + " | ".join(f"words at -{d} pt" for d in drops) + " |",
        "|---|---|" + "---|" * len(drops),
    ]
    for method, row in methods.items():
        cells = ["never" if row["size_at_drop"][d] is None
                 else f"{row['size_at_drop'][d]:,}" for d in drops]
        lines.append(f"| {method} | {row['auc']:.4f} | " + " | ".join(cells) + " |")
    full, pruned = report["full_vocabulary"], report["pruned"]
    lines += ["", f"Full vocabulary: F1@{k} {full[f'f1_at_{k}']:.4f}, "
              f"P@1 {full['precision_at_1']:.4f}."]
    baseline = report.get("baseline")
    if baseline:
        lines.append(
            f"Baseline (frequency and tfidf rows; the drops are measured from "
            f"its full vocabulary): F1@{k} "
            f"{baseline['full_vocabulary'][f'f1_at_{k}']:.4f}, P@1 "
            f"{baseline['full_vocabulary']['precision_at_1']:.4f}.")
    lines.append(
        f"At the model's own threshold: {pruned['kept_words']:,} of "
        f"{pruned['num_words']:,} words kept "
        f"({100 * pruned['kept_words'] / pruned['num_words']:.1f}%), "
        f"F1@{k} {pruned[f'{split}_f1_at_{k}']:.4f}; pruned model file "
        f"{pruned['model_bytes_before']:,} -> {pruned['model_bytes_after']:,} bytes.")
    return "\n".join(lines) + "\n"


def reference_f1(report):
    """The F1@k the drops of `report` are measured from (baseline's if any).

    Example:
    >>> reference_f1({"k": 3, "full_vocabulary": {"f1_at_3": 0.5},
    ...               "baseline": {"full_vocabulary": {"f1_at_3": 0.4}}})
    0.4
    """
    k = report["k"]
    source = report.get("baseline") or report
    return source["full_vocabulary"][f"f1_at_{k}"]


def results_page(report, image, config=None, command="", baseline_config=None):
    """A Markdown results page for `docs/results.md`, from a `compress_run` report.

    Every number comes from `report`: the table (`markdown_table`), the
    plot (`image`, a path relative to the page), the words each ranking
    keeps first and drops first, and the issue's acceptance checks, each
    computed and marked met or not met.

    Args:
        report: the dict of `compress_run` (or `vocabulary.json`).
        image: the plot's path as the page links it.
        config: the run's config dict (`config.json`), shown in short.
        command: the command that generated the page.
        baseline_config: the baseline run's config dict, shown in short.

    Example:
    >>> report = {"split": "test", "k": 3,
    ...     "full_vocabulary": {"f1_at_3": 0.5, "precision_at_1": 0.6},
    ...     "summary": {"full_size": 100, "methods": {
    ...         "variational": {"auc": 0.8, "size_at_drop": {"1": 10}},
    ...         "frequency": {"auc": 0.7, "size_at_drop": {"1": 50}}}},
    ...     "pruned": {"kept_words": 40, "num_words": 100, "test_f1_at_3": 0.49,
    ...                "model_bytes_before": 2000, "model_bytes_after": 900,
    ...                "embedding_rows_before": 102, "embedding_rows_after": 42,
    ...                "max_abs_score_difference": 0.0},
    ...     "kept_first": {"variational": ["vim"]},
    ...     "dropped_first": {"variational": ["the"]}}
    >>> page = results_page(report, "vocabulary.png")
    >>> "| variational AUC above every other ranking | 0.8000 vs 0.7000 | met |" in page
    True
    """
    k, split = report["k"], report["split"]
    methods = report["summary"]["methods"]
    pruned = report["pruned"]
    lines = ["# Vocabulary selection: results", ""]
    if command:
        lines += ["Generated by:", "", "    " + command, ""]
    lines += [f"Workdir: `{report.get('workdir', '?')}`."]
    for name, settings in (("Run", config), ("Baseline", baseline_config)):
        if settings:
            lines += ["", f"{name}: model `"
                      + json.dumps(settings.get("model", {}), sort_keys=True)
                      + "`, train `" + json.dumps(settings.get("train", {}), sort_keys=True)
                      + "`."]
    if report.get("baseline"):
        lines += ["", "The variational ranking is applied to the variational model; "
                  "the frequency and TF-IDF rankings to the non-variational "
                  "full-vocabulary baseline trained in the same run (`"
                  + report["baseline"]["workdir"] + "`), and every drop, the "
                  "threshold's included, is measured from the baseline's "
                  "full-vocabulary F1."]
    else:
        lines += ["", "Every ranking is applied to this one trained model; the drops "
                  "are measured from its own full-vocabulary F1 (no separate "
                  "non-variational baseline)."]
    lines += ["A size counts words: padding and [UNK] are not words, and [UNK] "
              "is zeroed whenever words are masked.", ""]
    lines += [markdown_table(report), f"![F1@{k} against vocabulary size]({image})", ""]
    lines += ["## Acceptance checks (issue 4)", "",
              "| check | measured | status |", "|---|---|---|"]
    if "variational" in methods:
        variational = methods["variational"]
        others = {m: v for m, v in methods.items() if m != "variational"}
        best_other = max(v["auc"] for v in others.values())
        lines.append(_check_row(
            "variational AUC above every other ranking",
            f"{variational['auc']:.4f} vs {best_other:.4f}",
            variational["auc"] > best_other))
        size = variational["size_at_drop"].get("1")
        frequency = methods.get("frequency", {}).get("size_at_drop", {}).get("1")
        full = report["summary"]["full_size"]
        if size is None:
            lines.append(_check_row("words at -1 pt: variational <= frequency / 4 "
                                    "and <= 2% of the vocabulary",
                                    "never within 1 pt", False))
        else:
            if frequency is not None:
                lines.append(_check_row(
                    "words at -1 pt: variational <= frequency / 4",
                    f"{size:,} vs {frequency:,}", 4 * size <= frequency))
            lines.append(_check_row(
                "words at -1 pt: variational <= 2% of the vocabulary",
                f"{size:,} of {full:,} = {100 * size / full:.2f}%",
                size <= 0.02 * full))
    dropped = 1 - pruned["kept_words"] / pruned["num_words"]
    f1_drop = reference_f1(report) - pruned[f"{split}_f1_at_{k}"]
    lines.append(_check_row(
        "threshold drops >= 90% of the words within 1 F1 point",
        f"{100 * dropped:.1f}% dropped, F1@{k} {-100 * f1_drop:+.2f} pt",
        dropped >= 0.9 and f1_drop <= 0.01))
    if "embedding_rows_after" in pruned:
        ratio = pruned["embedding_rows_before"] / pruned["embedding_rows_after"]
        lines.append(_check_row("pruned embedding >= 10x smaller", f"{ratio:.2f}x",
                                ratio >= 10))
    if "max_abs_score_difference" in pruned:
        difference = pruned["max_abs_score_difference"]
        lines.append(_check_row(
            f"pruned model reproduces the masked scores on {split} (<= 1e-5)",
            f"{difference:.2g}", difference <= 1e-5))
    lines += ["", "## Words kept first and dropped first", ""]
    for method in report.get("kept_first", {}):
        lines.append(f"- **{method}**, kept first: "
                     + ", ".join(report["kept_first"][method][:15]))
        lines.append(f"- **{method}**, dropped first: "
                     + ", ".join(report["dropped_first"][method][:15]))
    return "\n".join(lines) + "\n"


def _check_row(name, measured, met):
    return f"| {name} | {measured} | {'met' if met else 'not met'} |"


def plot_curves(report, path):
    """F1@k against vocabulary size (log x), one line per method, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    from matplotlib import pyplot

    k = report["k"]
    figure, axes = pyplot.subplots(figsize=(7, 4.5))
    for method, curve in report["curves"].items():
        on_baseline = report.get("baseline") and method != "variational"
        axes.plot(curve["sizes"], curve[f"f1_at_{k}"],
                  label=f"{method} (baseline model)" if on_baseline else method)
    baseline = bool(report.get("baseline"))
    reference = reference_f1(report)
    axes.axhline(reference, color="grey", linestyle=":",
                 label="baseline, full vocabulary" if baseline else "full vocabulary")
    axes.axhline(reference - 0.01, color="grey", linestyle="--", linewidth=0.8,
                 label="-1 point")
    axes.set_xscale("log")
    axes.set_xlabel("vocabulary size (words kept)")
    axes.set_ylabel(f"F1@{k} ({report['split']})")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    with io.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    pyplot.close(figure)


def main(argv):
    """`python -m vtrain.compress --workdir=DIR`: see `compress_workdir`."""
    del argv
    report = compress_workdir(FLAGS.workdir, num_sizes=FLAGS.num_sizes,
                              split=FLAGS.split,
                              baseline_workdir=FLAGS.baseline_workdir or None)
    print(markdown_table(report))
    if FLAGS.results_page:
        write_results_page(report, FLAGS.results_page, command=" ".join(
            ["python -m vtrain.compress"] + [a for a in sys.argv[1:]]))


def write_results_page(report, page_path, command=""):
    """Writes `results_page` to `page_path` and the plot next to it.

    The plot is copied as `vocabulary.png` in the page's folder so the page
    and its image travel together.
    """
    folder = os.path.dirname(os.path.abspath(page_path))
    image = os.path.join(folder, "vocabulary.png")
    plot_curves(report, image)
    configs = []
    for run in (report, report.get("baseline") or {}):
        config_path = os.path.join(run.get("workdir", ""), "config.json")
        configs.append(None)
        if run and os.path.isfile(config_path):
            with open(config_path) as f:
                configs[-1] = json.load(f)
    io.atomic_write_text(page_path, results_page(
        report, "vocabulary.png", config=configs[0], command=command,
        baseline_config=configs[1]))


if __name__ == "__main__":
    from absl import app, flags

    flags.DEFINE_string("workdir", None, "Folder of a finished vtrain.main run.")
    flags.DEFINE_string("baseline_workdir", "",
                        "Finished non-variational run on the same data (e.g. "
                        "WORKDIR/baseline of vtrain.main --baseline=...): the "
                        "frequency and TF-IDF curves and the reference F1 are its.")
    flags.DEFINE_integer("num_sizes", 100, "Log-spaced vocabulary sizes per ranking.")
    flags.DEFINE_enum("split", "test", ["test", "validation"],
                      "Split the curves are measured on.")
    flags.DEFINE_string("results_page", "",
                        "If set (e.g. docs/results.md), also write a results "
                        "page there, with the plot next to it.")
    flags.mark_flag_as_required("workdir")
    FLAGS = flags.FLAGS
    app.run(main)
