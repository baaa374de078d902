"""Masking an embedding to a subset of its words, for a model of any kind.

Padding (id 0) is left as it is: models leave it out of their pooling.
"[UNK]" (id 1) is always treated as dropped (zero when masking and in the
pruned export): in a pruned model every dropped word becomes "[UNK]", and a
masked model gives a dropped word a zero vector. The two agree exactly when
the model treats a zero vector like the "[UNK]" row, which is zero in both.
"""

import contextlib

import keras
import numpy as np
from keras import ops

from vtrain import _keras_compat
from vtrain.layers.variational_embedding import VariationalEmbedding
from vtrain.vocabulary.rankings import FIRST_WORD_ID, PADDING_ID


def embedding_layer(model):
    """The model's one word embedding (`VariationalEmbedding` or `Embedding`).

    Example:
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Embedding(5, 2)])
    >>> type(embedding_layer(model)).__name__
    'Embedding'
    """
    found = [
        layer
        for layer in _keras_compat.all_layers(model)
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
    keep_ids = check_keep_ids(keep_ids, vocabulary_size)
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


def check_keep_ids(keep_ids, vocabulary_size):
    """`keep_ids` as int64 word ids, checked: each in [2, V), none repeated.

    Example:
    >>> check_keep_ids([3, 2], 5).tolist()
    [3, 2]
    """
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
