"""Text pipeline: tag-recommendation examples -> batched `tf.data` of token ids.

`load_tag_data` reads the bundled Debian dataset (or the user's file), splits
it (`vtrain.tagging.data.debtags.load_splits`), fits a `keras.layers.TextVectorization`
on the training texts only, and returns a `TagData`: three datasets of
`(token_ids int32 [B, L], tags float32 multi-hot [B, T])` plus what a model
needs to size itself (vocabulary, tags, tag counts, number of examples).

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "mine.jsonl")
>>> with open(path, "w") as f:
...     for i in range(40):
...         _ = f.write('{"id": %d, "text": "A small tool %d", "tags": ["t%d"]}\\n'
...                     % (i, i % 3, i % 2))
>>> data = load_tag_data(path, sequence_length=4, min_tag_train_uses=1,
...                      batch_size=8)
>>> data.vocabulary[:5], data.tags
(['', '[UNK]', 'tool', 'small', 'a'], ['t0', 't1'])
>>> token_ids, tags = next(iter(data.train))
>>> token_ids.dtype.name, tuple(token_ids.shape), tags.dtype.name, tuple(tags.shape)
('int32', (8, 4), 'float32', (8, 2))
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from vtrain.tagging.data import debtags

# TextVectorization's own standardisation names, by (lowercase, strip_punctuation).
_STANDARDIZE = {
    (True, True): "lower_and_strip_punctuation",
    (True, False): "lower",
    (False, True): "strip_punctuation",
    (False, False): None,
}
PADDING_ID = 0
OOV_ID = 1


@dataclasses.dataclass
class TagData:
    """The three splits as batched datasets, and the vocabularies behind them.

    Attributes:
        train: `(token_ids int32 [B, L], tags float32 multi-hot [B, T])`
            batches, reshuffled every epoch, prefetched. The order of
            epoch e is a function of (seed, e) (see `EpochOrder`).
        validation: same, in file order.
        test: same, in file order.
        vectorizer: the `keras.layers.TextVectorization` fitted on the
            training texts; `vectorizer(["some text"])` gives token ids.
        vocabulary: `vectorizer.get_vocabulary()`: id 0 is "" (padding),
            id 1 is "[UNK]" (out of vocabulary).
        tags: tag index -> tag name.
        tag_train_counts: `[T]` int64, uses of each tag in the train split.
        num_train: number of training examples.
        sequence_length: L, tokens per example (truncated or zero-padded).
        train_order: the `EpochOrder` of `train`; `EpochShuffle(data)` is
            the callback that ties it to `fit`'s epoch.

    Example:
    >>> import tensorflow as tf
    >>> empty = tf.data.Dataset.from_tensors(([[2, 0]], [[1.0]]))
    >>> data = TagData(empty, empty, empty, None, ["", "[UNK]", "vim"], ["editor"],
    ...                np.array([1]), num_train=1, sequence_length=2)
    >>> data.num_tags, data.vocabulary_size
    (1, 3)
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    vectorizer: keras.layers.TextVectorization
    vocabulary: list
    tags: list
    tag_train_counts: np.ndarray
    num_train: int
    sequence_length: int
    train_order: "EpochOrder" = None

    @property
    def num_tags(self):
        """T, the number of tags (the width of the multi-hot targets)."""
        return len(self.tags)

    @property
    def vocabulary_size(self):
        """V, the number of token ids, padding and "[UNK]" included."""
        return len(self.vocabulary)


def load_tag_data(
    path=None,
    *,
    sequence_length=160,
    min_word_count=2,
    max_vocabulary_size=0,
    lowercase=True,
    strip_punctuation=True,
    batch_size=64,
    eval_batch_size=512,
    min_tag_train_uses=5,
    max_train_examples=0,
    seed=0,
):
    """Loads, splits, vectorizes and batches a tag-recommendation dataset.

    Args:
        path: a user data file (`.jsonl`, `.json`, `.tsv`, optionally `.gz`;
            see `vtrain.tagging.data.loaders`), or None / "" for the bundled Debian
            dataset. Either way it is split 80/10/10 by `debtags.split_of`
            of each example's group (else its package, id or text).
        sequence_length: tokens kept per text (the first ones; shorter texts
            are padded with id 0).
        min_word_count: a word enters the vocabulary when it occurs at least
            this many times in the training texts.
        max_vocabulary_size: at most this many ids (padding and "[UNK]"
            included), the most frequent words first; 0 means no cap.
        lowercase: lower-case texts before splitting them into words.
        strip_punctuation: remove ASCII punctuation before splitting.
        batch_size: examples per training batch.
        eval_batch_size: examples per validation / test batch.
        min_tag_train_uses: tags with fewer training uses are dropped.
        max_train_examples: keep only the first this many training examples
            (for quick runs and tests); 0 keeps all. Validation and test are
            never shortened.
        seed: seed of the training shuffle.

    Returns:
        A `TagData`.

    Raises:
        vtrain.tagging.data.loaders.DataError: the file is missing or malformed (the
            message names the file and line).
        ValueError: an argument is out of range, or a split is empty.

    Example: see the module docstring.
    """
    _check_positive("sequence_length", sequence_length)
    _check_positive("min_word_count", min_word_count)
    _check_positive("batch_size", batch_size)
    _check_positive("eval_batch_size", eval_batch_size)
    _check_positive("min_tag_train_uses", min_tag_train_uses)
    for name, value in (
        ("max_vocabulary_size", max_vocabulary_size),
        ("max_train_examples", max_train_examples),
    ):
        _check_positive(name, value, allow_zero=True)
    if max_vocabulary_size and max_vocabulary_size < 3:
        raise ValueError(
            f"Invalid max_vocabulary_size: received {max_vocabulary_size}. "
            "Expected 0 (no cap) or at least 3 (padding, [UNK] and one word)."
        )

    splits = example_splits(path, min_tag_train_uses, max_train_examples)

    train_texts = [example["text"] for example in splits["train"]]
    standardize = _STANDARDIZE[bool(lowercase), bool(strip_punctuation)]
    words = _frequent_words(train_texts, standardize, min_word_count, max_vocabulary_size)
    vectorizer = keras.layers.TextVectorization(
        standardize=standardize,
        output_sequence_length=sequence_length,
        vocabulary=words,
    )
    tags = list(splits["tags"])
    tag_index = {tag: i for i, tag in enumerate(tags)}

    def arrays(examples):
        token_ids = vectorizer(tf.constant([e["text"] for e in examples]))
        multi_hot = np.zeros((len(examples), len(tags)), np.float32)
        for row, example in enumerate(examples):
            multi_hot[row, [tag_index[tag] for tag in example["tags"]]] = 1.0
        return tf.cast(token_ids, tf.int32).numpy(), multi_hot

    train_ids, train_tags = arrays(splits["train"])
    train_order = EpochOrder(len(train_ids), seed)
    train = train_order.batches(train_ids, train_tags, batch_size=batch_size)

    def unshuffled(examples):
        return (
            tf.data.Dataset.from_tensor_slices(arrays(examples))
            .batch(eval_batch_size)
            .prefetch(tf.data.AUTOTUNE)
        )

    return TagData(
        train=train,
        validation=unshuffled(splits["validation"]),
        test=unshuffled(splits["test"]),
        vectorizer=vectorizer,
        vocabulary=[str(word) for word in vectorizer.get_vocabulary()],
        tags=tags,
        tag_train_counts=train_tags.sum(axis=0).astype(np.int64),
        num_train=len(train_ids),
        sequence_length=sequence_length,
        train_order=train_order,
    )


def example_splits(path=None, min_tag_train_uses=5, max_train_examples=0):
    """The train / validation / test examples and tags that `load_tag_data` uses.

    `{"train": [...], "validation": [...], "test": [...], "tags": [...]}`
    from `debtags.load_splits`, the training split cut to
    `max_train_examples` (0 = all); raises ValueError if a split is empty.
    Models that read raw texts (the TF-IDF baseline) use it to see exactly
    the Keras models' examples.
    """
    splits = debtags.load_splits(path or debtags.DEFAULT_PATH, min_tag_train_uses)
    if max_train_examples:
        splits["train"] = splits["train"][:max_train_examples]
    source = path or "the bundled dataset"
    for name in debtags.SPLITS:
        if not splits[name]:
            raise ValueError(
                f"The {name} split of {source} is empty after keeping tags with "
                f"at least {min_tag_train_uses} training uses. Expected examples "
                "in every split (80/10/10 by a hash of the group, package or id). Use "
                "more data or a smaller min_tag_train_uses."
            )
    return splits


class EpochOrder:
    """The order of the training examples: a function of (seed, epoch) only.

    `tf.data`'s `shuffle(reshuffle_each_iteration=True)` draws each pass's
    order from the number of passes made so far in this process, so a run
    resumed at epoch e (a new process) would see epoch 0's order again, and
    resuming would not reproduce the uninterrupted run. Here the order of
    a pass is `stateless_shuffle(range(size), seed=(seed, epoch))`, where
    `epoch` is set by the `EpochShuffle` callback at each epoch start, or,
    without it, counts the passes (so plain iteration still reshuffles).

    Example:
    >>> order = EpochOrder(5, seed=0)
    >>> data = order.batches(np.arange(5), np.zeros((5, 1)), batch_size=5)
    >>> first, second = (next(iter(data))[0].numpy().tolist() for _ in range(2))
    >>> sorted(first), first != second
    ([0, 1, 2, 3, 4], True)
    >>> order.set_epoch(1)  # pinned: every pass is epoch 1's order
    >>> next(iter(data))[0].numpy().tolist() == second
    True
    """

    def __init__(self, size, seed):
        self.size = int(size)
        self.seed = int(seed)
        # -1: not pinned; each pass takes the next value of `_passes`.
        self._epoch = tf.Variable(-1, dtype=tf.int64, trainable=False)
        self._passes = tf.Variable(0, dtype=tf.int64, trainable=False)

    def set_epoch(self, epoch):
        """Pins the order of every following pass to epoch `epoch`'s (None: unpin)."""
        self._epoch.assign(-1 if epoch is None else epoch)

    def indices(self, _=None):
        """A dataset of this pass's example indices (a `flat_map` function)."""
        passes = self._passes.assign_add(1) - 1
        epoch = tf.where(self._epoch >= 0, self._epoch, passes)
        seed = tf.stack([tf.constant(self.seed, tf.int64), epoch])
        order = tf.random.experimental.stateless_shuffle(
            tf.range(self.size, dtype=tf.int64), seed=seed
        )
        return tf.data.Dataset.from_tensor_slices(order)

    def batches(self, *arrays, batch_size):
        """Batches of `arrays` (same first dimension `size`) in this order, prefetched."""
        tensors = tuple(tf.constant(array) for array in arrays)
        num_batches = -(-self.size // batch_size)
        return (
            tf.data.Dataset.from_tensors(0)
            .flat_map(self.indices)
            .batch(batch_size)
            .map(lambda rows: tuple(tf.gather(t, rows) for t in tensors))
            .apply(tf.data.experimental.assert_cardinality(num_batches))
            .prefetch(tf.data.AUTOTUNE)
        )


class EpochShuffle(keras.callbacks.Callback):
    """Gives `fit`'s epoch number to a `TagData`'s training order.

    With it, epoch e of a run resumed from a backup sees the same batches
    as epoch e of an uninterrupted run (`vtrain.tagging.train` adds it).

    Example:
    >>> data = TagData(None, None, None, None, [], [], np.zeros(0), 5, 1,
    ...                train_order=EpochOrder(5, seed=0))
    >>> EpochShuffle(data).on_epoch_begin(3)
    >>> int(data.train_order._epoch.numpy())
    3
    """

    def __init__(self, data):
        super().__init__()
        self.order = data.train_order

    def on_epoch_begin(self, epoch, logs=None):
        self.order.set_epoch(epoch)

    def on_train_end(self, logs=None):
        self.order.set_epoch(None)


def _frequent_words(texts, standardize, min_count, max_size):
    """Words of `texts` seen at least `min_count` times, most frequent first.

    TextVectorization's `adapt` ranks words by count but cannot drop rare
    ones, so the texts are counted once through the adapted layer.
    """
    counter = keras.layers.TextVectorization(standardize=standardize, ragged=True)
    counter.adapt(tf.data.Dataset.from_tensor_slices(texts).batch(1024))
    ranked = counter.get_vocabulary()
    ids = counter(tf.constant(texts)).flat_values.numpy()
    counts = np.bincount(ids, minlength=len(ranked))
    words = [str(word) for word, count in zip(ranked[2:], counts[2:]) if count >= min_count]
    if max_size:
        words = words[: max_size - 2]
    if not words:
        raise ValueError(
            f"No word occurs {min_count} or more times in the {len(texts)} "
            "training texts, so the vocabulary would be empty. Use a smaller "
            "min_word_count or more data."
        )
    return words


def _check_positive(name, value, allow_zero=False):
    minimum = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(
            f"Invalid {name}: received {value!r}. Expected an integer >= {minimum}"
            + (" (0 means no limit)." if allow_zero else ".")
        )
