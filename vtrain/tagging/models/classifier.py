"""Fast multi-label tag classifiers: a pooled-embedding MLP and a Kim-style CNN.

Both read token ids `[B, L]` (0 = padding), score every tag with one logit,
train on `cross_entropy` (one sigmoid per tag, summed over tags) plus the
scheduled KL of their `VariationalEmbedding` (or no KL with a plain
embedding, `variational=False`), and rank tags with `recommend(ids, k)`.

>>> import numpy as np
>>> model = PooledClassifier(vocabulary_size=50, num_tags=4, embedding_dim=8,
...                          hidden_units=16)
>>> model.compile(optimizer="adam")
>>> ids = np.random.randint(0, 50, (32, 6)).astype("int32")
>>> tags = np.eye(4, dtype="float32")[np.arange(32) % 4]
>>> sorted(model.fit(ids, tags, epochs=1, verbose=0).history)
['cross_entropy', 'kl', 'kl_weight', 'learning_rate', 'loss']
>>> tuple(model.recommend(ids[:2], k=3).shape)
(2, 3)
"""

import keras
import numpy as np
from keras import ops

from vtrain.layers.gather_embedding import GatherEmbedding
from vtrain.layers.variational_dense import VariationalDense
from vtrain.layers.variational_embedding import VariationalEmbedding
from vtrain.variational import VariationalModel
from vtrain.vocabulary.rankings import OOV_ID

UNKNOWN_WORDS = ("learned", "zero", "zero_at_inference")


class TagClassifier(VariationalModel):
    """Base of the classifiers: embedding, output layer, `recommend`.

    A subclass builds its encoder in `__init__` and implements
    `encode(embedded, mask, training) -> [B, H]`; the logits are
    `self.output_layer(self.output_dropout(encoded))`.

    Args:
        vocabulary_size: V, token ids in [0, V); 0 is padding.
        num_tags: T, the number of logits.
        embedding_dim: D.
        dropout: dropout rate before the output layer (and in the encoder).
        variational: a `VariationalEmbedding` (learns which words to drop)
            if True, else a plain embedding (no KL term).
        threshold: `log_alpha` above which a word is dropped at inference.
        log_alpha_init_min, log_alpha_init_max: the variational embedding's
            `log_alpha` starts uniform in [min, max] (the reference: 0, 3).
            Starting nearer the threshold lets the KL push the unneeded
            words past it sooner.
        initial_tag_bias: None, or `[T]` initial output biases; `build`
            uses each tag's training log-odds, so training does not spend
            its first steps learning that most tags are rare.
        unknown_words: what an "[UNK]" token (id 1: a word seen fewer than
            `min_word_count` times in training) contributes. `"learned"`:
            the vector of its row, like any word. `"zero"`: a zero vector in
            training and at inference (it still counts in a mean, as a
            dropped word does). `"zero_at_inference"`: learned in training,
            zero at inference, as in the pruned export, where every dropped
            word becomes "[UNK]". Why: held-out texts hold words never seen
            in training, which the row learned from once-seen training
            words describes badly (docs/results.md).
        kl_refresh_steps: the variational embedding's: 1 (exact) computes
            every word's KL gradient at every step; k > 1 (faster at large
            vocabularies) recomputes the batch's words and a rotating 1/k
            of the others per step, and reuses the rest's
            (`VariationalEmbedding`).
        **kwargs: `VariationalModel` arguments (`weight_decay`,
            `learning_rate`, ...); `task_loss` is binary cross-entropy.
    """

    def __init__(
        self,
        vocabulary_size,
        num_tags,
        embedding_dim=128,
        dropout=0.3,
        variational=True,
        threshold=3.0,
        log_alpha_init_min=0.0,
        log_alpha_init_max=3.0,
        initial_tag_bias=None,
        unknown_words="learned",
        kl_refresh_steps=1,
        **kwargs,
    ):
        kwargs.setdefault("task_loss", "binary_crossentropy")
        super().__init__(**kwargs)
        if unknown_words not in UNKNOWN_WORDS:
            raise ValueError(
                f"Invalid unknown_words for {type(self).__name__}: received "
                f"{unknown_words!r}. Expected one of {', '.join(UNKNOWN_WORDS)}; "
                "'learned' gives [UNK] a vector of its own."
            )
        self.unknown_words = unknown_words
        self.kl_refresh_steps = kl_refresh_steps
        for name, value in (
            ("vocabulary_size", vocabulary_size),
            ("num_tags", num_tags),
            ("embedding_dim", embedding_dim),
        ):
            _check_int(type(self).__name__, name, value, minimum=1)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(
                f"Invalid dropout for {type(self).__name__}: received {dropout!r}. "
                "Expected a rate in [0, 1), e.g. 0.3."
            )
        self.vocabulary_size = int(vocabulary_size)
        self.num_tags = int(num_tags)
        self.embedding_dim = int(embedding_dim)
        self.dropout_rate = float(dropout)
        self.variational = bool(variational)
        self.threshold = float(threshold)
        self.log_alpha_init_min = float(log_alpha_init_min)
        self.log_alpha_init_max = float(log_alpha_init_max)
        if not self.log_alpha_init_min <= self.log_alpha_init_max:
            raise ValueError(
                f"Invalid log_alpha_init_min/max for {type(self).__name__}: "
                f"received {log_alpha_init_min!r} and {log_alpha_init_max!r}. "
                "Expected min <= max, e.g. 0.0 and 3.0."
            )
        if self.variational:
            self.embedding = VariationalEmbedding(
                self.vocabulary_size,
                self.embedding_dim,
                threshold=self.threshold,
                log_alpha_initializer=self._log_alpha_initializer(),
                kl_refresh_steps=kl_refresh_steps,
                name="embedding",
            )
        else:
            self.embedding = GatherEmbedding(
                self.vocabulary_size, self.embedding_dim, name="embedding"
            )
        self.initial_tag_bias = (
            None if initial_tag_bias is None else [float(b) for b in initial_tag_bias]
        )
        if self.initial_tag_bias is not None and len(self.initial_tag_bias) != num_tags:
            raise ValueError(
                f"Invalid initial_tag_bias for {type(self).__name__}: received "
                f"{len(self.initial_tag_bias)} values. Expected one per tag "
                f"({num_tags}), or None."
            )
        self.output_dropout = keras.layers.Dropout(self.dropout_rate)
        self.output_layer = keras.layers.Dense(
            self.num_tags,
            name="tag_logits",
            bias_initializer=(
                "zeros"
                if self.initial_tag_bias is None
                else keras.initializers.Constant(np.array(self.initial_tag_bias, "float32"))
            ),
        )

    @classmethod
    def data_arguments(cls, data):
        """The constructor arguments that `data` (a `TagData`) fixes.

        `vocabulary_size`, `num_tags`, and `initial_tag_bias`: each tag's
        add-one-smoothed log-odds in the training split, so training does
        not spend its first steps learning that most tags are rare.

        Example:
        >>> import types
        >>> data = types.SimpleNamespace(vocabulary=["", "[UNK]", "vim"],
        ...                              tags=["editor", "game"], num_train=10,
        ...                              tag_train_counts=np.array([4, 0]))
        >>> arguments = PooledClassifier.data_arguments(data)
        >>> arguments["vocabulary_size"], arguments["num_tags"]
        (3, 2)
        >>> [round(b, 3) for b in arguments["initial_tag_bias"]]  # log(5/7), log(1/11)
        [-0.336, -2.398]
        """
        num_train = max(int(data.num_train), 1)
        uses = np.asarray(data.tag_train_counts, np.float64) + 1.0
        log_odds = np.log(uses / (num_train + 2.0 - uses))
        return {
            "vocabulary_size": len(data.vocabulary),
            "num_tags": len(data.tags),
            "initial_tag_bias": log_odds.tolist(),
        }

    def _log_alpha_initializer(self):
        if (self.log_alpha_init_min, self.log_alpha_init_max) == (0.0, 3.0):
            return None  # the layer's own default, the reference's range
        if self.log_alpha_init_min == self.log_alpha_init_max:
            return keras.initializers.Constant(self.log_alpha_init_min)
        return keras.initializers.RandomUniform(self.log_alpha_init_min, self.log_alpha_init_max)

    def call(self, token_ids, training=False):
        token_ids = ops.cast(token_ids, "int32")
        mask = ops.cast(ops.not_equal(token_ids, 0), "float32")
        if self.variational:
            embedded = self.embedding(token_ids, training=training)
        else:
            embedded = self.embedding(token_ids)
        if self.unknown_words == "zero" or (
            self.unknown_words == "zero_at_inference" and not training
        ):
            known = ops.cast(ops.not_equal(token_ids, OOV_ID), embedded.dtype)
            embedded = embedded * known[:, :, None]
        encoded = self.encode(embedded, mask, training=training)
        return self.output_layer(self.output_dropout(encoded, training=training))

    def encode(self, embedded, mask, training=False):
        """`[B, L, D]` embedded tokens and `[B, L]` 0/1 mask -> `[B, H]`."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement encode(embedded, mask, training)."
        )

    def recommend(self, token_ids, k):
        """The k highest-scoring tag indices per example, best first.

        Args:
            token_ids: int `[B, L]`.
            k: number of tags, 1 <= k <= num_tags.

        Returns:
            int32 tensor `[B, k]`.

        Example:
        >>> model = PooledClassifier(vocabulary_size=10, num_tags=5)
        >>> model.recommend(np.array([[3, 4, 0]]), k=2).dtype.name
        'int32'
        """
        _check_int(type(self).__name__, "k", k, minimum=1, maximum=self.num_tags)
        scores = self(token_ids, training=False)
        return ops.cast(ops.top_k(scores, int(k), sorted=True)[1], "int32")

    def get_config(self):
        config = super().get_config()
        config.pop("task_loss", None)  # always binary_crossentropy
        config.update(
            vocabulary_size=self.vocabulary_size,
            num_tags=self.num_tags,
            embedding_dim=self.embedding_dim,
            dropout=self.dropout_rate,
            variational=self.variational,
            threshold=self.threshold,
            log_alpha_init_min=self.log_alpha_init_min,
            log_alpha_init_max=self.log_alpha_init_max,
            initial_tag_bias=self.initial_tag_bias,
            unknown_words=self.unknown_words,
            kl_refresh_steps=self.kl_refresh_steps,
        )
        return config


@keras.saving.register_keras_serializable(package="vtrain")
class PooledClassifier(TagClassifier):
    """Pooled word embeddings -> one hidden ReLU layer -> one logit per tag.

    Padding (id 0) is left out of the pooling. `pooling="mean"` averages
    the words; `"mean_max"` concatenates the average and the per-dimension
    maximum.

    Args:
        hidden_units: width of the hidden layer; 0 for none (a linear model
            on the pooled vector).
        pooling: `"mean"` or `"mean_max"`.
        variational_hidden: a `VariationalDense` hidden layer (Sparse
            Variational Dropout: learns which of its weights to drop; its KL
            joins the `kl` term; weights with log_alpha >= `threshold` are
            dropped at inference) instead of a plain `Dense`.
        **kwargs: see `TagClassifier`.

    Example:
    >>> model = PooledClassifier(vocabulary_size=10, num_tags=3, embedding_dim=4)
    >>> tuple(model(np.array([[1, 2, 0, 0]])).shape)
    (1, 3)
    """

    POOLINGS = ("mean", "mean_max")

    def __init__(
        self,
        vocabulary_size,
        num_tags,
        hidden_units=512,
        pooling="mean",
        variational_hidden=False,
        **kwargs,
    ):
        super().__init__(vocabulary_size, num_tags, **kwargs)
        _check_int(type(self).__name__, "hidden_units", hidden_units, minimum=0)
        if pooling not in self.POOLINGS:
            raise ValueError(
                f"Invalid pooling for PooledClassifier: received {pooling!r}. "
                f"Expected one of {list(self.POOLINGS)}."
            )
        self.hidden_units = int(hidden_units)
        self.pooling = pooling
        self.variational_hidden = bool(variational_hidden)
        if not self.hidden_units:
            self.hidden = None
        elif self.variational_hidden:
            self.hidden = VariationalDense(
                self.hidden_units, activation="relu", threshold=self.threshold, name="hidden"
            )
        else:
            self.hidden = keras.layers.Dense(self.hidden_units, activation="relu", name="hidden")
        self.hidden_dropout = keras.layers.Dropout(self.dropout_rate)

    def encode(self, embedded, mask, training=False):
        weights = mask[:, :, None]
        count = ops.maximum(ops.sum(weights, axis=1), 1.0)
        pooled = ops.sum(embedded * weights, axis=1) / count
        if self.pooling == "mean_max":
            # Padding must never win the max: push it far below any value.
            masked = embedded + (weights - 1.0) * 1e9
            maximum = ops.max(masked, axis=1) * ops.minimum(count, 1.0)
            pooled = ops.concatenate([pooled, maximum], axis=-1)
        if self.hidden is None:
            return pooled
        return self.hidden(self.hidden_dropout(pooled, training=training), training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_units=self.hidden_units,
            pooling=self.pooling,
            variational_hidden=self.variational_hidden,
        )
        return config


@keras.saving.register_keras_serializable(package="vtrain")
class CNNClassifier(TagClassifier):
    """Kim (2014) CNN: parallel 1-D convolutions, max over time, one logit per tag.

    Args:
        filter_widths: window sizes, in tokens, one convolution each.
        num_filters: filters per window size; the encoding has
            `len(filter_widths) * num_filters` features.
        **kwargs: see `TagClassifier`.

    Example:
    >>> model = CNNClassifier(vocabulary_size=10, num_tags=3, embedding_dim=4,
    ...                       filter_widths=(2, 3), num_filters=5)
    >>> tuple(model(np.array([[1, 2, 3, 0]])).shape)
    (1, 3)
    """

    def __init__(
        self, vocabulary_size, num_tags, filter_widths=(3, 4, 5), num_filters=100, **kwargs
    ):
        super().__init__(vocabulary_size, num_tags, **kwargs)
        filter_widths = [int(w) for w in filter_widths]
        if not filter_widths or min(filter_widths) < 1:
            raise ValueError(
                "Invalid filter_widths for CNNClassifier: received "
                f"{filter_widths!r}. Expected a non-empty list of positive window "
                "sizes, e.g. (3, 4, 5)."
            )
        _check_int(type(self).__name__, "num_filters", num_filters, minimum=1)
        self.filter_widths = filter_widths
        self.num_filters = int(num_filters)
        self.convolutions = [
            keras.layers.Conv1D(
                self.num_filters, width, padding="same", activation="relu", name=f"conv_{width}"
            )
            for width in filter_widths
        ]

    def encode(self, embedded, mask, training=False):
        weights = mask[:, :, None]
        embedded = embedded * weights
        features = []
        for convolution in self.convolutions:
            # ReLU outputs are >= 0, so zeroing padded positions keeps them
            # out of the max.
            features.append(ops.max(convolution(embedded) * weights, axis=1))
        return ops.concatenate(features, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(filter_widths=list(self.filter_widths), num_filters=self.num_filters)
        return config


def _check_int(owner, name, value, minimum, maximum=None):
    bad = isinstance(value, bool) or not isinstance(value, (int, np.integer))
    if bad or value < minimum or (maximum is not None and value > maximum):
        upper = "" if maximum is None else f" and <= {maximum}"
        raise ValueError(
            f"Invalid {name} for {owner}: received {value!r}. Expected an "
            f"integer >= {minimum}{upper}."
        )
