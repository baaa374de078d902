"""A neural topic model: a VAE over the bag-of-words of each description.

NVDM-style (Miao et al. 2016, "Neural Variational Inference for Text
Processing"): an MLP encoder maps a document's word counts to a diagonal
Gaussian `q(z | d) = N(mu, diag(exp(log_var)))`, a reparameterised sample
`z = mu + exp(log_var / 2) * eps` goes through a linear decoder, and a softmax
over the vocabulary gives the word distribution. Two terms:

- `reconstruction`: `-sum_w n_w log p(w | z)` per document (the multinomial
  log-likelihood without its count-only coefficient, the usual convention),
  averaged over the batch;
- `kl`: `KL(q(z | d) || N(0, I))` in closed form, averaged over the batch.

Their sum is the negative ELBO per document; KL annealing multiplies `kl` by
a schedule (`loss_weights={"kl": vtrain.schedules.cyclical(...)}`), which
trains a lower bound of something else, so `evaluate_elbo` always reports
the true ELBO (weight 1) and the perplexity.

Example:
>>> import numpy as np, vtrain
>>> model = BagOfWordsVAE(vocabulary_size=30, num_topics=4, hidden_units=16,
...                       loss_weights={"kl": vtrain.schedules.linear_warmup(1.0, 2)})
>>> model.compile(optimizer="adam")
>>> ids = np.random.default_rng(0).integers(0, 30, (32, 10)).astype("int32")
>>> history = model.fit(ids, epochs=2, verbose=0).history
>>> sorted(history), history["kl_weight"]
(['kl', 'kl_weight', 'learning_rate', 'loss', 'reconstruction'], [0.0, 0.5])
>>> sorted(evaluate_elbo(model, ids))
['documents', 'elbo_per_document', 'kl', 'perplexity', 'reconstruction', 'words_per_document']
"""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from vtrain.distribute import example_mean, replica_seed
from vtrain.model import Model

# Logit of a reserved id (padding, out-of-vocabulary): it is never a word of
# the document, so the decoder's softmax runs over the real words only.
_NEVER = -1e9


def gaussian_kl(mu, log_var):
    """`KL(N(mu, diag(exp(log_var))) || N(0, I))` per example, shape `[B]`.

    Example:
    >>> import numpy as np
    >>> [float(v) for v in gaussian_kl(np.zeros((2, 3)), np.zeros((2, 3)))]
    [0.0, 0.0]
    """
    mu, log_var = ops.cast(mu, "float32"), ops.cast(log_var, "float32")
    return 0.5 * ops.sum(ops.square(mu) + ops.exp(log_var) - 1.0 - log_var, axis=-1)


def multinomial_nll(counts, logits):
    """`-sum_w counts_w * log_softmax(logits)_w` per example, shape `[B]`.

    Example:
    >>> import numpy as np
    >>> round(float(multinomial_nll(np.array([[2.0, 0.0]]), np.zeros((1, 2)))[0]), 4)
    1.3863
    """
    log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    return -ops.sum(ops.cast(counts, "float32") * log_probs, axis=-1)


@keras.saving.register_keras_serializable(package="vtrain")
class BagOfWordsVAE(Model):
    """VAE over word counts; terms `reconstruction` and `kl`.

    Batches are `token_ids` `[B, L]` (padding 0) or `(token_ids, anything)`:
    the tags of the tag datasets are ignored, so the launcher's batches work
    as they are. Ids below `num_reserved` (TextVectorization's padding 0 and
    `[UNK]` 1) are not words: they are neither counted nor predicted; nor
    are ids `>= vocabulary_size`, so a `vocabulary_size` smaller than the
    vectorizer's keeps its most frequent words (TextVectorization numbers
    words by decreasing frequency). The counts are those of the (possibly
    truncated) id sequence.

    Args:
        vocabulary_size: number of ids V modelled (the words are
            `num_reserved .. V - 1`).
        num_topics: size of the latent code z.
        hidden_units: width of the two encoder layers.
        num_reserved: ids `0 .. num_reserved - 1` are not words.
        seed: seed of the reparameterisation noise.
        **kwargs: `loss_weights` (e.g. `{"kl": schedule}`), `learning_rate`,
            and `keras.Model` arguments.

    Example:
    >>> import numpy as np
    >>> model = BagOfWordsVAE(vocabulary_size=20, num_topics=3, hidden_units=8)
    >>> ids = np.array([[2, 5, 5, 0], [7, 1, 3, 3]])
    >>> sorted(model.compute_losses(ids, training=True)), tuple(model(ids).shape)
    (['kl', 'reconstruction'], (2, 3))
    """

    def __init__(
        self,
        vocabulary_size,
        num_topics=50,
        hidden_units=256,
        num_reserved=2,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0 <= num_reserved < vocabulary_size:
            raise ValueError(
                f"BagOfWordsVAE received num_reserved={num_reserved!r} with "
                f"vocabulary_size={vocabulary_size!r}; expected 0 <= "
                "num_reserved < vocabulary_size (2 for TextVectorization's "
                "padding and [UNK])."
            )
        self.vocabulary_size = vocabulary_size
        self.num_topics = num_topics
        self.hidden_units = hidden_units
        self.num_reserved = num_reserved
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.encoder = keras.Sequential(
            [
                keras.layers.Dense(hidden_units, activation="softplus"),
                keras.layers.Dense(hidden_units, activation="softplus"),
            ],
            name="encoder",
        )
        self.mu = keras.layers.Dense(num_topics, name="mu")
        # Zero-initialised: q starts as N(mu, I), a KL-neutral variance.
        self.log_var = keras.layers.Dense(num_topics, kernel_initializer="zeros", name="log_var")
        self.decoder = keras.layers.Dense(vocabulary_size, name="decoder")
        self.encoder.build((None, vocabulary_size))
        self.mu.build((None, hidden_units))
        self.log_var.build((None, hidden_units))
        self.decoder.build((None, num_topics))
        reserved = np.zeros(vocabulary_size, "float32")
        reserved[:num_reserved] = _NEVER
        self._reserved_logits = reserved
        self.built = True

    @classmethod
    def data_arguments(cls, data):
        """The constructor arguments that `data` (a `TagData`) fixes.

        Example:
        >>> import types
        >>> BagOfWordsVAE.data_arguments(types.SimpleNamespace(vocabulary=[""] * 100))
        {'vocabulary_size': 100}
        """
        return {"vocabulary_size": len(data.vocabulary)}

    def bag_of_words(self, token_ids):
        """`[B, L]` ids -> `[B, V]` float32 word counts (reserved ids: 0).

        Example:
        >>> model = BagOfWordsVAE(vocabulary_size=5, num_topics=2, hidden_units=4)
        >>> model.bag_of_words([[0, 2, 4, 2, 1]]).numpy().tolist()
        [[0.0, 0.0, 2.0, 0.0, 1.0]]
        """
        ids = tf.cast(token_ids, tf.int32)
        counts = tf.math.bincount(
            ids,
            minlength=self.vocabulary_size,
            maxlength=self.vocabulary_size,
            dtype=tf.float32,
            axis=-1,
        )
        return counts * ops.cast(ops.equal(self._reserved_logits, 0.0), "float32")

    def encode(self, counts, training=False):
        """Counts -> `(mu, log_var)` of q(z | d), each `[B, num_topics]`.

        Example:
        >>> model = BagOfWordsVAE(vocabulary_size=6, num_topics=2, hidden_units=4)
        >>> [tuple(t.shape) for t in model.encode(model.bag_of_words([[2, 3]]))]
        [(1, 2), (1, 2)]
        """
        # log1p: long documents would otherwise saturate the first layer.
        hidden = self.encoder(ops.log1p(counts), training=training)
        return self.mu(hidden), self.log_var(hidden)

    def decode(self, z):
        """Latent codes `[B, K]` -> word logits `[B, V]` (reserved ids masked).

        Example:
        >>> import numpy as np
        >>> model = BagOfWordsVAE(vocabulary_size=4, num_topics=2, hidden_units=4)
        >>> [bool(v < -1e8) for v in model.decode(np.zeros((1, 2)))[0]]
        [True, True, False, False]
        """
        return self.decoder(z) + self._reserved_logits

    def forward(self, token_ids, training=False):
        """Every intermediate of one pass: counts, mu, log_var, z, logits.

        Example:
        >>> model = BagOfWordsVAE(vocabulary_size=6, num_topics=2, hidden_units=4)
        >>> sorted(model.forward([[2, 3, 0]]))
        ['counts', 'log_var', 'logits', 'mu', 'z']
        """
        counts = self.bag_of_words(token_ids)
        mu, log_var = self.encode(counts, training=training)
        # Sampled at evaluation too: the ELBO is an expectation under q, and
        # a one-sample estimate of it is unbiased (z = mu would not be).
        z = mu + ops.exp(0.5 * log_var) * self.latent_noise(mu)
        return {"counts": counts, "mu": mu, "log_var": log_var, "z": z, "logits": self.decode(z)}

    def latent_noise(self, mu):
        """Standard normal noise shaped like `mu`, its own on every replica.

        Example:
        >>> model = BagOfWordsVAE(vocabulary_size=6, num_topics=2, hidden_units=4)
        >>> tuple(model.latent_noise(np.zeros((3, 2), "float32")).shape)
        (3, 2)
        """
        seed = replica_seed(self.seed_generator)
        return tf.random.stateless_normal(ops.shape(mu), seed=seed, dtype=mu.dtype)

    def call(self, token_ids, training=False):
        """The document's topic code: `mu` of q(z | d), `[B, num_topics]`."""
        return self.encode(self.bag_of_words(token_ids), training=training)[0]

    def compute_losses(self, data, training):
        token_ids = data[0] if isinstance(data, (tuple, list)) else data
        out = self.forward(token_ids, training=training)
        return {
            "reconstruction": example_mean(multinomial_nll(out["counts"], out["logits"])),
            "kl": example_mean(gaussian_kl(out["mu"], out["log_var"])),
        }

    def evaluate_split(self, dataset, progress=False):
        """`evaluate_elbo` on a dataset: the launcher's test / validation figures."""
        return evaluate_elbo(self, dataset, progress=progress)

    def reference_metrics(self, train, splits):
        """The simplest model's figure next to this one's: `unigram_perplexity`.

        For each `{name: dataset}` of `splits`, the perplexity of the
        training split's word frequencies (add-one smoothed, over the same
        counted words as `evaluate_elbo`; the counts are taken once): a VAE
        whose perplexity bound is not below it has learned nothing from the
        documents' topics.

        Example:
        >>> model = BagOfWordsVAE(vocabulary_size=5, num_topics=2, hidden_units=4)
        >>> got = model.reference_metrics([[2, 2, 3, 0]], {"test": [[2, 4]]})
        >>> round(got["test"]["unigram_perplexity"], 3)
        3.464
        """
        log_p = unigram_log_probs(train, self.vocabulary_size, self.num_reserved)
        return {
            name: {"unigram_perplexity": _perplexity(log_p, dataset, self.num_reserved)}
            for name, dataset in splits.items()
        }

    def validation_callback(self, dataset):
        """The launcher's validation metric: `ElboValidation` on `dataset`."""
        return ElboValidation(dataset)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size,
            num_topics=self.num_topics,
            hidden_units=self.hidden_units,
            num_reserved=self.num_reserved,
            seed=self.seed,
        )
        return config


def unigram_perplexity(train, data, vocabulary_size, num_reserved=2):
    """Perplexity on `data` of a unigram model fitted to `train`'s word counts.

    Both are datasets of `token_ids` or `(token_ids, ...)` batches, or
    arrays of ids; ids below `num_reserved` (padding, [UNK]) or from
    `vocabulary_size` up (beyond the model's `max_words`) are not counted,
    as in `evaluate_elbo`. The word probabilities are add-one smoothed over
    the `vocabulary_size - num_reserved` real words. Returns
    `exp(-sum log p(w) / number of words)` over the words of `data`.

    Example:
    >>> round(unigram_perplexity([[2, 2, 3, 0]], [[2, 4]], vocabulary_size=5), 3)
    3.464
    """
    return _perplexity(unigram_log_probs(train, vocabulary_size, num_reserved), data, num_reserved)


def unigram_log_probs(train, vocabulary_size, num_reserved=2):
    """`[V]` add-one-smoothed log-probabilities of `train`'s counted words.

    Example:
    >>> [round(float(p), 3) for p in np.exp(unigram_log_probs([[2, 2, 3, 0]], 5))[2:]]
    [0.5, 0.333, 0.167]
    """
    counts = np.zeros(vocabulary_size, np.float64)
    for ids in _id_batches(train):
        counts += np.bincount(_words(ids, vocabulary_size, num_reserved), minlength=vocabulary_size)
    return np.log((counts + 1.0) / (counts.sum() + vocabulary_size - num_reserved))


def _perplexity(log_p, data, num_reserved):
    total, words = 0.0, 0
    for ids in _id_batches(data):
        real = _words(ids, len(log_p), num_reserved)
        total += float(log_p[real].sum())
        words += real.size
    if words == 0:
        raise ValueError(
            f"unigram_perplexity received data with no word (ids >= {num_reserved}); "
            "expected token ids. Check that the data holds token ids."
        )
    return math.exp(-total / words)


def _words(ids, vocabulary_size, num_reserved):
    return ids[(ids >= num_reserved) & (ids < vocabulary_size)]


def _id_batches(data):
    if not isinstance(data, tf.data.Dataset):
        yield np.asarray(data, np.int64)
        return
    for batch in data:
        token_ids = batch[0] if isinstance(batch, (tuple, list)) else batch
        yield np.asarray(token_ids, np.int64)


def evaluate_elbo(model, data, batch_size=256, progress=False):
    """The ELBO per document and the perplexity of `model` on `data`.

    `data` is a `tf.data.Dataset` of `token_ids` or `(token_ids, ...)`
    batches, or an array of ids. The KL counts with weight 1 whatever the
    annealing schedule, so the figure is a true bound.

    Returns a dict: `elbo_per_document` (mean over documents, in nats),
    `perplexity = exp(-sum_d ELBO_d / sum_d N_d)` (N_d: the document's
    counted words; a bound: the true perplexity is lower), the mean
    `reconstruction` and `kl` per document, `words_per_document`, and the
    number of `documents`. `progress` shows a bar, one step per batch.

    Example:
    >>> model = BagOfWordsVAE(vocabulary_size=10, num_topics=2, hidden_units=4)
    >>> result = evaluate_elbo(model, [[2, 3, 3, 0]])
    >>> result["documents"], result["words_per_document"]
    (1, 3.0)
    """
    if not isinstance(data, tf.data.Dataset):
        data = tf.data.Dataset.from_tensor_slices(np.asarray(data)).batch(batch_size)
    sums = {"reconstruction": 0.0, "kl": 0.0, "words": 0.0}
    documents = 0
    total = int(data.cardinality())
    bar = keras.utils.Progbar(total if total > 0 else None, unit_name="batch") if progress else None
    for step, batch in enumerate(data, start=1):
        token_ids = batch[0] if isinstance(batch, (tuple, list)) else batch
        out = model.forward(token_ids, training=False)
        sums["reconstruction"] += float(ops.sum(multinomial_nll(out["counts"], out["logits"])))
        sums["kl"] += float(ops.sum(gaussian_kl(out["mu"], out["log_var"])))
        sums["words"] += float(ops.sum(out["counts"]))
        documents += int(ops.shape(token_ids)[0])
        if bar is not None:
            bar.update(step)
    if documents == 0 or sums["words"] == 0:
        raise ValueError(
            f"evaluate_elbo received {documents} documents with "
            f"{sums['words']:.0f} words; expected at least one word (ids >= "
            "num_reserved). Check that the data holds token ids."
        )
    negative_elbo = sums["reconstruction"] + sums["kl"]
    return {
        "elbo_per_document": -negative_elbo / documents,
        "perplexity": math.exp(negative_elbo / sums["words"]),
        "reconstruction": sums["reconstruction"] / documents,
        "kl": sums["kl"] / documents,
        "words_per_document": sums["words"] / documents,
        "documents": documents,
    }


class ElboValidation(keras.callbacks.Callback):
    """Adds `val_elbo_per_document` and `val_perplexity` to the epoch logs.

    `evaluate_elbo` on `dataset` at every epoch end: the true ELBO (KL
    weight 1), unlike `val_loss`, which uses the annealed weight. `monitor`
    and `mode` tell a checkpoint which value to keep the best of.

    Example:
    >>> callback = ElboValidation(dataset=[[2, 3]])
    >>> callback.monitor, callback.mode
    ('val_elbo_per_document', 'max')
    """

    def __init__(self, dataset):
        super().__init__()
        self.dataset = dataset
        self.monitor = "val_elbo_per_document"
        self.mode = "max"

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        result = evaluate_elbo(self.model, self.dataset)
        logs["val_elbo_per_document"] = result["elbo_per_document"]
        logs["val_perplexity"] = result["perplexity"]
