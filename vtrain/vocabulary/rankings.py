"""Word rankings for vocabulary selection: word ids, best first.

A text model reads token ids from a `TextVectorization` vocabulary
`["", "[UNK]", word_2, word_3, ...]`: padding, out of vocabulary, then the
words (by training frequency, TextVectorization's order). Rankings order
the word ids (>= 2) three ways: `variational_ranking` (ascending
`log_alpha` of a `VariationalEmbedding`), `frequency_ranking` and
`tfidf_ranking`. Ids 0 and 1 are never in a ranking.

>>> import numpy as np
>>> ids = [np.array([[2, 3, 3, 0], [4, 2, 0, 0]])]
>>> tfidf_ranking(ids, vocabulary_size=5).tolist()
[3, 2, 4]
>>> frequency_ranking(["", "[UNK]", "the", "vim"]).tolist()
[2, 3]
"""

import numpy as np
from keras import ops

from vtrain.layers.variational_embedding import VariationalEmbedding

PADDING_ID = 0
OOV_ID = 1
FIRST_WORD_ID = 2


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

    A `TextVectorization` adapted on the training texts sorts its
    vocabulary by count, so this is ids 2 .. V-1 in order.

    Args:
        vocabulary: a `TextVectorization` or its `get_vocabulary()` list
            (id 0 "", id 1 "[UNK]").

    Example:
    >>> frequency_ranking(["", "[UNK]", "the", "a", "vim"]).tolist()
    [2, 3, 4]
    """
    vocabulary = vocabulary_list(vocabulary)
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
        pairs, counts = np.unique(rows[real] * vocabulary_size + flat[real], return_counts=True)
        row, word = pairs // vocabulary_size, pairs % vocabulary_size
        np.add.at(tf_sum, word, counts / lengths[row])
        np.add.at(df, word, 1)
        num_documents += len(ids)
    if num_documents == 0:
        raise ValueError(
            "tfidf_ranking received no documents; expected the training split's token ids."
        )
    idf = np.log((1.0 + num_documents) / (1.0 + df)) + 1.0
    # tf_sum[w] * idf[w] = sum over documents of TF-IDF, since idf is per word.
    score = tf_sum * idf / num_documents
    return np.argsort(-score[FIRST_WORD_ID:], kind="stable").astype(np.int64) + FIRST_WORD_ID


def vocabulary_list(vocabulary):
    """`vocabulary` (a `TextVectorization` or a list) as a checked list of strings.

    Example:
    >>> vocabulary_list(["", "[UNK]", "vim"])
    ['', '[UNK]', 'vim']
    """
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
