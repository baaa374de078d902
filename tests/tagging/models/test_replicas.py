"""The worked models train to the same weights on one replica and on two.

Each model (triplet, VAE, iTag) is trained twice from the same initial
weights on the same 19 examples in batches of 8 (the last batch splits
2 + 1 on two replicas): once on one device, once under `MirroredStrategy`
on two logical CPUs. Their random draws are replaced by fixed functions of
the example (a triplet's positive and negatives, the VAE's latent noise,
the iTag embedding's noise through `IdNoiseEmbedding`): a random draw
depends on how the batch is split, so two real draws can never agree, while
a function of the example lands the same on any replica. What is left to
differ is float32 summation order; plain SGD turns any gradient off by a
factor (an `ops.mean` over an uneven split, a global term counted twice)
into a weight difference of that factor.
"""

import textwrap

import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from tests.test_distribute import IdNoiseEmbedding, run_script
from vtrain.tagging.models.itag import ITag
from vtrain.tagging.models.triplet import TripletRecommender
from vtrain.tagging.models.vae import BagOfWordsVAE

VOCAB, LENGTH, TAGS, EXAMPLES, BATCH = 20, 6, 6, 19, 8


class FixedDrawTriplet(TripletRecommender):
    """Positive: the example's first tag; negatives: its K lowest-ranked others."""

    def sample_triplets(self, tags):
        carries = ops.greater(ops.cast(tags, "float32"), 0.0)
        positive_ids = ops.cast(ops.argmax(ops.cast(carries, "float32"), axis=-1), "int32")
        rank = ops.sin(1.3 * ops.arange(self.num_tags, dtype="float32"))
        _, negative_ids = ops.top_k(ops.where(carries, -10.0, rank), k=self.num_negatives)
        return positive_ids, ops.cast(negative_ids, "int32")


class FixedNoiseVAE(BagOfWordsVAE):
    """Latent noise `sin(3 mu + 0.5)`: non-zero, and the same on any replica."""

    def latent_noise(self, mu):
        return tf.stop_gradient(ops.sin(3.0 * mu + 0.5))


def build(kind):
    if kind == "triplet":
        model = FixedDrawTriplet(
            vocabulary_size=VOCAB,
            num_tags=TAGS,
            embedding_dim=4,
            hidden_units=8,
            num_negatives=2,
            loss_weights={"l2": 0.01},
        )
    elif kind == "vae":
        model = FixedNoiseVAE(vocabulary_size=VOCAB, num_topics=3, hidden_units=8)
    else:
        model = ITag(
            vocabulary_size=VOCAB,
            num_tags=TAGS,
            tag_priority=list(range(TAGS)),
            copy_pairs=[[5, 2]],
            embedding_dim=4,
            encoder_units=4,
            decoder_units=6,
            attention_units=4,
            max_tags=3,
            dropout=0.0,
            weight_decay=0.05,
            presence_weight=0.5,
        )
        # The same layer with its noise a function of the token id.
        model.embedding.__class__ = IdNoiseEmbedding
    model(np.ones((2, LENGTH), "int32"))
    rng = np.random.default_rng(42)
    model.set_weights(
        [rng.uniform(-0.5, 0.5, w.shape).astype(w.dtype) for w in model.get_weights()]
    )
    return model


def make_data(seed=0, examples=EXAMPLES):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, VOCAB, (examples, LENGTH)).astype("int32")
    x[:, -2:] = 0  # padding, which every model masks
    y = (rng.random((examples, TAGS)) < 0.4).astype("float32")
    y[np.arange(examples), rng.integers(0, TAGS, examples)] = 1.0  # every example has a tag
    return x, y


def train(strategy, kind):
    """Weights and history after 2 epochs of SGD under `strategy`."""
    import keras

    x, y = make_data()
    xv, yv = make_data(seed=1, examples=7)
    with strategy.scope():
        model = build(kind)
        model.compile(optimizer=keras.optimizers.SGD(0.2))
    history = model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=2,
        validation_data=(xv, yv),
        validation_batch_size=4,
        shuffle=False,
        verbose=0,
    ).history
    return [w.tolist() for w in model.get_weights()], history


_SCRIPT = textwrap.dedent(
    """
    import json, os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np
    from vtrain import distribute
    distribute.split_cpu(2)  # before anything initialises TensorFlow
    from tests.tagging.models.test_replicas import build, train

    mirrored = distribute.get_strategy("mirrored")
    one = distribute.get_strategy("none")
    results = {"replicas": mirrored.num_replicas_in_sync}
    for kind in ("triplet", "vae", "itag"):
        start = [w for w in build(kind).get_weights()]
        (w2, h2), (w1, h1) = train(mirrored, kind), train(one, kind)
        results[kind] = {
            "weights": max(float(np.max(np.abs(np.array(a) - np.array(b))))
                           for a, b in zip(w2, w1)),
            "moved": max(float(np.max(np.abs(np.array(a) - b))) for a, b in zip(w1, start)),
            "logs": {key: float(np.max(np.abs(np.array(h2[key]) - np.array(h1[key]))
                                       / np.maximum(np.abs(np.array(h1[key])), 1e-6)))
                     for key in h1},
            "keys": sorted(h1),
        }
    print(json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def results():
    results = run_script(_SCRIPT)
    assert results.pop("replicas") == 2
    return results


@pytest.mark.parametrize(
    "kind, terms",
    [
        ("triplet", ["l2", "triplet"]),
        ("vae", ["kl", "reconstruction"]),
        ("itag", ["cross_entropy", "kl", "presence"]),
    ],
)
def test_two_replicas_train_to_the_weights_of_one(results, kind, terms):
    result = results[kind]
    assert result["weights"] < 1e-5, result
    assert max(result["logs"].values()) < 1e-5, result
    for term in terms:
        assert term in result["keys"] and f"val_{term}" in result["keys"], result
    # Not vacuous: two epochs of SGD move the weights by far more than 1e-5.
    assert result["moved"] > 1e-2, result


def test_draws_differ_between_replicas():
    """Each replica draws its own noise and negatives (`replica_seed`)."""
    draws = run_script(_DRAWS_SCRIPT)
    # Both replicas see the same slice (the same 4 examples twice); with a
    # mirrored seed they would draw the same values.
    noise = np.array(draws["noise"])
    assert noise.shape == (2, 4, 3) and np.abs(noise[0] - noise[1]).max() > 0.1
    negatives = np.array(draws["negatives"])
    assert negatives.shape == (2, 4, 16) and (negatives[0] != negatives[1]).any()


_DRAWS_SCRIPT = textwrap.dedent(
    """
    import json, os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np
    from vtrain import distribute
    distribute.split_cpu(2)
    import tensorflow as tf
    from vtrain.tagging.models.triplet import TripletRecommender
    from vtrain.tagging.models.vae import BagOfWordsVAE

    strategy = distribute.get_strategy("mirrored")
    with strategy.scope():
        vae = BagOfWordsVAE(vocabulary_size=20, num_topics=3, hidden_units=8, seed=3)
        triplet = TripletRecommender(vocabulary_size=20, num_tags=40, num_negatives=16, seed=3)
    tags = np.zeros((4, 40), "float32")
    tags[:, 0] = 1.0

    @tf.function
    def step():
        noise = vae.latent_noise(tf.zeros((4, 3)))
        _, negatives = triplet.sample_triplets(tf.constant(tags))
        return noise, negatives

    noise, negatives = strategy.run(step)
    local = lambda value: [t.numpy().tolist() for t in strategy.experimental_local_results(value)]
    print(json.dumps({"noise": local(noise), "negatives": local(negatives)}))
    """
)
