"""A pruned model: its vocabulary is the kept words only, its scores unchanged.

Works for any Keras model with one word embedding (`VariationalEmbedding`
or `keras.layers.Embedding`, found by `embedding_layer`) that reads token
ids from a `TextVectorization`:

- a functional or `Sequential` model is rebuilt from its config with the
  embedding's `input_dim` changed;
- a subclassed model follows one protocol: its `get_config()` has a
  `vocabulary_size` entry (a constructor argument) that sets the number of
  embedding rows, so `type(model).from_config(config)` rebuilds it smaller.
  A model whose config holds word ids besides (e.g. the words a copy
  path can copy) defines
  `pruned_config(rows)`: its config for the rows `rows` (old ids, in new id
  order), ids remapped.

Every other weight is copied unchanged, in `model.weights` order.
"""

import json
import os
import tempfile

import keras
import numpy as np
from keras import ops

from vtrain import io
from vtrain.vocabulary.masking import check_keep_ids, embedding_layer
from vtrain.vocabulary.rankings import FIRST_WORD_ID, OOV_ID, PADDING_ID, vocabulary_list

MODEL_FILE = "model.keras"
VOCABULARY_FILE = "vocabulary.json"


def export_pruned(model, vectorizer, keep_ids, path):
    """Writes a model whose vocabulary is `keep_ids` only, with the same scores.

    The new `TextVectorization` has the kept words (in their original
    order, so ids are remapped to 2, 3, ...); every other word becomes
    "[UNK]", whose row is zero. The embedding holds the padding row, a
    zero "[UNK]" row and the kept rows (and their `log_alpha`). On raw
    texts, `pruned(new_vectorizer(texts))` equals `model(vectorizer(texts))`
    under `mask_embedding(model, keep_ids)`.

    Files (each written atomically): `PATH/model.keras` (no optimizer
    state) and `PATH/vocabulary.json` (the vectorizer's config with the
    kept words).

    Args:
        model: a functional, `Sequential` or protocol-following subclassed
            model (see the module docstring).
        vectorizer: the `TextVectorization` the model was trained with.
        keep_ids: word ids (>= 2) to keep.
        path: output directory (created if missing).

    Returns:
        `{"model_bytes_before", "model_bytes_after", "embedding_rows_before",
        "embedding_rows_after", "embedding_bytes_before",
        "embedding_bytes_after"}`; "before" is the full model saved the
        same way.

    Example:
    >>> import tempfile
    >>> vectorizer = keras.layers.TextVectorization(vocabulary=["vim", "emacs", "nano"])
    >>> inputs = keras.Input((None,), dtype="int64")
    >>> pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(5, 3)(inputs))
    >>> model = keras.Model(inputs, keras.layers.Dense(2)(pooled))
    >>> folder = tempfile.mkdtemp()
    >>> sizes = export_pruned(model, vectorizer, [2, 4], folder)
    >>> sizes["embedding_rows_before"], sizes["embedding_rows_after"]
    (5, 4)
    >>> pruned, small_vectorizer = load_pruned(folder)
    >>> [str(word) for word in small_vectorizer.get_vocabulary()]
    ['', '[UNK]', 'vim', 'nano']
    """
    vocabulary = vocabulary_list(vectorizer)
    layer = embedding_layer(model)
    if layer.input_dim != len(vocabulary):
        raise ValueError(
            f"The model's embedding has {layer.input_dim} rows but the vectorizer "
            f"has {len(vocabulary)} ids; expected the same. Pass the vectorizer "
            "the model was trained with."
        )
    keep_ids = np.sort(check_keep_ids(keep_ids, len(vocabulary)))
    pruned = pruned_model(model, keep_ids)
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
        _rebuilt(model, np.arange(layer.input_dim)).save(full_path)
        before = os.path.getsize(full_path)
    itemsize = np.dtype(layer.embeddings.dtype).itemsize
    rows_after = len(keep_ids) + FIRST_WORD_ID
    return {
        "model_bytes_before": before,
        "model_bytes_after": os.path.getsize(model_path),
        "embedding_rows_before": int(layer.input_dim),
        "embedding_rows_after": int(rows_after),
        "embedding_bytes_before": int(layer.input_dim * layer.output_dim * itemsize),
        "embedding_bytes_after": int(rows_after * layer.output_dim * itemsize),
    }


def load_pruned(path):
    """`(model, vectorizer)` written by `export_pruned` into `path`.

    Score raw texts with `model(vectorizer(texts))`. The model's classes
    must be registered with Keras (import their module first).
    """
    model_path = os.path.join(path, MODEL_FILE)
    if not os.path.isfile(model_path):
        raise FileNotFoundError(
            f"load_pruned received {path!r}, which has no {MODEL_FILE}; expected "
            "a directory written by vtrain.vocabulary.export_pruned."
        )
    model = keras.saving.load_model(model_path, compile=False)
    with open(os.path.join(path, VOCABULARY_FILE)) as f:
        config = json.load(f)["vectorizer"]
    return model, keras.layers.TextVectorization.from_config(config)


def pruned_model(model, keep_ids):
    """A rebuilt, uncompiled copy of `model` whose embedding has only `keep_ids`.

    Row 0 (padding) is kept, row 1 ("[UNK]") is zero, then the kept rows in
    `keep_ids` order.
    """
    keep_ids = np.asarray(keep_ids, np.int64)
    rows = np.concatenate([[PADDING_ID, OOV_ID], keep_ids])
    pruned = _rebuilt(model, rows)
    embedding_layer(pruned).embeddings.assign(
        _zero_oov(ops.convert_to_numpy(embedding_layer(pruned).embeddings))
    )
    return pruned


def _zero_oov(table):
    table = table.copy()
    table[OOV_ID] = 0.0  # every dropped word maps here
    return table


def _rebuilt(model, rows):
    """`model` rebuilt with the embedding rows `rows` (old ids, new order), its weights copied."""
    old_layer = embedding_layer(model)
    copy = _from_config_with_rows(model, old_layer, rows)
    if not copy.built:
        copy(np.zeros((1, 1), "int32"))  # builds the weights to copy into
    for old, new in zip(model.weights, copy.weights):
        value = ops.convert_to_numpy(old)
        if any(old is w for w in old_layer.weights):
            value = value[rows]
        if tuple(value.shape) != tuple(new.shape):
            raise ValueError(
                f"Cannot copy weight {old.path} of shape {value.shape} into "
                f"{new.path} of shape {tuple(new.shape)}; expected the rebuilt "
                "model to have the same layers in the same order."
            )
        new.assign(value)
    return copy


def _from_config_with_rows(model, layer, rows):
    num_rows = len(rows)
    if hasattr(model, "pruned_config"):
        return type(model).from_config(model.pruned_config([int(row) for row in rows]))
    config = model.get_config()
    if isinstance(config, dict) and "vocabulary_size" in config:
        config = {**config, "vocabulary_size": int(num_rows)}
        return type(model).from_config(config)
    for entry in config.get("layers", []) if isinstance(config, dict) else []:
        if entry.get("config", {}).get("name") == layer.name:
            entry["config"]["input_dim"] = int(num_rows)
            return type(model).from_config(config)
    raise ValueError(
        f"Cannot rebuild {type(model).__name__} with a smaller vocabulary: its "
        "get_config() has no 'vocabulary_size' and no layer named "
        f"{layer.name!r}. Expected a functional or Sequential model whose "
        "embedding is one of its layers, or a subclassed model whose "
        "constructor takes vocabulary_size (the number of embedding rows) "
        "and returns it in get_config()."
    )


def _vectorizer_config(vectorizer):
    if not isinstance(vectorizer, keras.layers.TextVectorization):
        raise TypeError(
            f"Received a {type(vectorizer).__name__}; expected the "
            "keras.layers.TextVectorization the model was trained with."
        )
    config = vectorizer.get_config()
    config.pop("vocabulary_size", None)  # derived from the vocabulary
    config["max_tokens"] = None
    return config
