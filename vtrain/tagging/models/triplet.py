"""A two-tower tag recommender trained with a triplet (or BPR) loss.

The text tower embeds a description, the item tower embeds each tag, and a
tag's score is the dot product of the two vectors. One training triplet per
example and step: anchor = the description, positive = one of its tags drawn
uniformly, negatives = `num_negatives` tags drawn uniformly from the tags it
does *not* carry (sampling from the whole tag set, not in-batch, so a
negative is never a true tag of the anchor and rare tags are negatives as
often as common ones).

Terms: `triplet` (hinge, the default) or `bpr`, and `l2`, the squared norm of
the towers' weights, whose weight is scheduled through `loss_weights`.

Example:
>>> import numpy as np, vtrain
>>> model = TripletRecommender(vocabulary_size=50, num_tags=6, embedding_dim=8,
...                            loss_weights={"l2": vtrain.schedules.constant(1e-4)})
>>> model.compile(optimizer="adam")
>>> ids = np.random.default_rng(0).integers(1, 50, (16, 7)).astype("int32")
>>> tags = np.eye(6, dtype="float32")[np.arange(16) % 6]
>>> sorted(model.fit(ids, tags, epochs=1, verbose=0).history)
['l2', 'l2_weight', 'learning_rate', 'loss', 'triplet']
>>> tuple(model.recommend(ids[:2], k=3).shape)
(2, 3)
"""

import keras
import tensorflow as tf
from keras import ops

from vtrain.distribute import example_mean, replica_seed
from vtrain.model import Model

LOSSES = ("hinge", "bpr")
# Added to the logits of tags that must not be drawn (as a positive: tags the
# example lacks; as a negative: tags it carries). Finite, unlike -inf, so no
# NaN can arise from 0 * inf.
_NEVER = -1e9


def triplet_hinge(anchor, positive, negatives, margin, hardest=False):
    """Mean triplet hinge `max(0, margin - a.p + a.n)` over examples and negatives.

    Args:
        anchor: `[B, D]` description vectors.
        positive: `[B, D]` vectors of one true tag per example.
        negatives: `[B, K, D]` vectors of K non-tags per example.
        margin: how much higher a true tag must score than a negative.
        hardest: if True, only the highest-scoring of the K negatives counts
            per example (the mean is then over examples).

    Example:
    >>> import numpy as np
    >>> a, p = np.array([[1.0, 0.0]]), np.array([[0.5, 0.0]])
    >>> n = np.array([[[0.0, 1.0], [1.0, 0.0]]])
    >>> float(triplet_hinge(a, p, n, margin=1.0))  # (0.5 + 1.5) / 2
    1.0
    """
    positive_score, negative_scores = _scores(anchor, positive, negatives)
    if hardest:
        negative_scores = ops.max(negative_scores, axis=1, keepdims=True)
    return example_mean(ops.relu(margin - positive_score[:, None] + negative_scores))


def bpr(anchor, positive, negatives):
    """Mean BPR loss `-log sigmoid(a.p - a.n)` over examples and negatives.

    Example:
    >>> import numpy as np
    >>> a, p, n = np.array([[1.0]]), np.array([[0.0]]), np.array([[[0.0]]])
    >>> round(float(bpr(a, p, n)), 4)  # log 2
    0.6931
    """
    positive_score, negative_scores = _scores(anchor, positive, negatives)
    return example_mean(ops.softplus(negative_scores - positive_score[:, None]))


def _scores(anchor, positive, negatives):
    anchor = ops.cast(anchor, "float32")
    positive_score = ops.sum(anchor * ops.cast(positive, "float32"), axis=-1)
    negative_scores = ops.einsum("bd,bkd->bk", anchor, ops.cast(negatives, "float32"))
    return positive_score, negative_scores


@keras.saving.register_keras_serializable(package="vtrain")
class TripletRecommender(Model):
    """Two-tower tag recommender: `score(text, tag) = text_tower(text) . tag_vector`.

    Text tower: word embedding (id 0 is padding) -> mean over the real
    tokens -> `Dense(hidden_units, relu)` -> `Dense(embedding_dim)`. Item
    tower: one `embedding_dim` vector per tag. `call(token_ids)` returns the
    `[B, num_tags]` scores; `recommend(token_ids, k)` the top-k tag indices.

    Batches are `(token_ids int [B, L], tags multi-hot float [B, T])`; every
    example needs at least one tag and one non-tag.

    Args:
        vocabulary_size: number of word ids (0 = padding).
        num_tags: number of tags T.
        embedding_dim: size of the word, text and tag vectors.
        hidden_units: width of the text tower's hidden layer.
        margin: hinge margin (ignored by BPR).
        num_negatives: negatives drawn per example and step.
        hard_negatives: hinge only: if True, each example's term is its
            highest-scoring sampled negative's (a WARP-like focus on the
            tags ranked wrongly); else the mean over the K negatives.
        loss: `"hinge"` (term `triplet`) or `"bpr"` (term `bpr`).
        dropout: dropout rate on the pooled text vector in training.
        seed: seed of the positive / negative sampling.
        **kwargs: `loss_weights` (e.g. `{"l2": schedule}`), `learning_rate`,
            and `keras.Model` arguments.

    Example:
    >>> import numpy as np
    >>> model = TripletRecommender(vocabulary_size=30, num_tags=4, embedding_dim=8)
    >>> terms = model.compute_losses((np.array([[3, 5, 0]]), np.array([[0, 1, 1, 0.0]])),
    ...                              training=True)
    >>> sorted(terms), tuple(model(np.array([[3, 5, 0]])).shape)
    (['l2', 'triplet'], (1, 4))
    """

    def __init__(
        self,
        vocabulary_size,
        num_tags,
        embedding_dim=64,
        hidden_units=256,
        margin=0.5,
        num_negatives=32,
        hard_negatives=False,
        loss="hinge",
        dropout=0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if loss not in LOSSES:
            raise ValueError(
                f"Invalid loss for TripletRecommender: received {loss!r}. "
                f"Expected one of {list(LOSSES)}; pass loss='hinge' for the "
                "margin triplet loss."
            )
        if num_tags < 2:
            raise ValueError(
                f"TripletRecommender received num_tags={num_tags!r}; expected "
                "at least 2 (a negative must differ from the positive)."
            )
        self.vocabulary_size = vocabulary_size
        self.num_tags = num_tags
        self.embedding_dim = embedding_dim
        self.hidden_units = hidden_units
        self.margin = float(margin)
        self.num_negatives = num_negatives
        self.hard_negatives = bool(hard_negatives)
        self.loss_name = loss
        self.dropout_rate = dropout
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.word_embedding = keras.layers.Embedding(
            vocabulary_size, embedding_dim, name="word_embedding"
        )
        self.dropout = keras.layers.Dropout(dropout, seed=seed)
        self.hidden = keras.layers.Dense(hidden_units, activation="relu", name="hidden")
        self.projection = keras.layers.Dense(embedding_dim, name="projection")
        # The item tower is a plain weight, not an Embedding layer: the tags
        # are not vocabulary rows (the launcher counts Embedding rows as such).
        self.tag_table = self.add_weight(
            shape=(num_tags, embedding_dim), initializer="uniform", name="tag_vectors"
        )
        # Built now: compute_losses reads the weights before any call().
        self.word_embedding.build()
        self.hidden.build((None, embedding_dim))
        self.projection.build((None, hidden_units))
        self.built = True

    @classmethod
    def data_arguments(cls, data):
        """The constructor arguments that `data` (a `TagData`) fixes.

        Example:
        >>> import types
        >>> data = types.SimpleNamespace(vocabulary=["", "[UNK]", "vim"], tags=["a", "b"])
        >>> TripletRecommender.data_arguments(data)
        {'vocabulary_size': 3, 'num_tags': 2}
        """
        return {"vocabulary_size": len(data.vocabulary), "num_tags": len(data.tags)}

    def encode_text(self, token_ids, training=False):
        """The text tower: `[B, L]` ids -> `[B, embedding_dim]` vectors.

        Example:
        >>> import numpy as np
        >>> model = TripletRecommender(vocabulary_size=10, num_tags=3, embedding_dim=4)
        >>> tuple(model.encode_text(np.array([[1, 2, 0]])).shape)
        (1, 4)
        """
        token_ids = ops.cast(token_ids, "int32")
        mask = ops.cast(ops.not_equal(token_ids, 0), "float32")[..., None]
        words = self.word_embedding(token_ids) * mask
        # Mean over real tokens; an all-padding text gets the zero vector.
        pooled = ops.sum(words, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)
        pooled = self.dropout(pooled, training=training)
        return self.projection(self.hidden(pooled))

    def tag_vectors(self):
        """The item tower: `[num_tags, embedding_dim]`.

        Example:
        >>> tuple(TripletRecommender(vocabulary_size=10, num_tags=3,
        ...                          embedding_dim=4).tag_vectors().shape)
        (3, 4)
        """
        return self.tag_table

    def call(self, token_ids, training=False):
        return ops.matmul(self.encode_text(token_ids, training), ops.transpose(self.tag_vectors()))

    def recommend(self, token_ids, k):
        """The `k` best-scoring tag indices per text, best first: int32 `[B, k]`.

        Example:
        >>> import numpy as np
        >>> model = TripletRecommender(vocabulary_size=20, num_tags=5)
        >>> tuple(model.recommend(np.ones((3, 4), "int32"), k=2).shape)
        (3, 2)
        """
        _, indices = ops.top_k(self(token_ids), k=k)
        return ops.cast(indices, "int32")

    def compute_losses(self, data, training):
        token_ids, tags = data[0], ops.cast(data[1], "float32")
        anchor = self.encode_text(token_ids, training=training)
        positive_ids, negative_ids = self.sample_triplets(tags)
        table = self.tag_vectors()
        positive = ops.take(table, positive_ids, axis=0)
        negatives = ops.take(table, negative_ids, axis=0)
        if self.loss_name == "hinge":
            ranking = {
                "triplet": triplet_hinge(
                    anchor, positive, negatives, self.margin, hardest=self.hard_negatives
                )
            }
        else:
            ranking = {"bpr": bpr(anchor, positive, negatives)}
        return {**ranking, "l2": self.l2()}

    def sample_triplets(self, tags):
        """Draws one positive and `num_negatives` negative tag ids per example.

        The positive is uniform over the example's tags, each negative
        uniform over the tags it does not carry; fresh draws at every call.

        Returns:
            `(positive_ids [B], negative_ids [B, num_negatives])`, int32.

        Example:
        >>> import numpy as np
        >>> model = TripletRecommender(vocabulary_size=5, num_tags=3, num_negatives=4)
        >>> positive, negatives = model.sample_triplets(np.array([[0.0, 1.0, 1.0]]))
        >>> ops.convert_to_numpy(negatives).tolist()  # tag 0, the only non-tag
        [[0, 0, 0, 0]]
        """
        carries = ops.greater(ops.cast(tags, "float32"), 0.0)
        # Equal logits over the allowed tags make each draw uniform.
        # Seeds of their own on every replica (replica_seed): the generator's
        # state is mirrored.
        positive_ids = tf.random.stateless_categorical(
            ops.where(carries, 0.0, _NEVER),
            1,
            seed=replica_seed(self.seed_generator),
            dtype="int32",
        )[:, 0]
        negative_ids = tf.random.stateless_categorical(
            ops.where(carries, _NEVER, 0.0),
            self.num_negatives,
            seed=replica_seed(self.seed_generator),
            dtype="int32",
        )
        return positive_ids, negative_ids

    def l2(self):
        """Sum of squares of every kernel and embedding table (biases excluded).

        Example:
        >>> model = TripletRecommender(vocabulary_size=10, num_tags=3, embedding_dim=4)
        >>> float(model.l2()) > 0
        True
        """
        return ops.sum(
            [ops.sum(ops.square(w)) for w in self.trainable_weights if "bias" not in w.path]
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size,
            num_tags=self.num_tags,
            embedding_dim=self.embedding_dim,
            hidden_units=self.hidden_units,
            margin=self.margin,
            num_negatives=self.num_negatives,
            hard_negatives=self.hard_negatives,
            loss=self.loss_name,
            dropout=self.dropout_rate,
            seed=self.seed,
        )
        return config
