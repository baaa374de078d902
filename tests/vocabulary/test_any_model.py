"""Vocabulary selection on models that are not the tag classifier.

A functional model and a subclassed one (following the documented
`vocabulary_size` protocol), each defined here: rankings, the sweep with
the test's own metric, the summary, and a pruned export reloaded in a
fresh process with identical scores.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import vtrain
from vtrain import vocabulary

WORDS = ["vim", "emacs", "nano", "gedit", "kate", "joe", "jed", "mg"]
TEXTS = ["vim and emacs", "nano nano kate", "gedit or mg", "joe jed vim", "emacs"]


def _vectorizer():
    return keras.layers.TextVectorization(output_sequence_length=6, vocabulary=WORDS)


def _functional(variational):
    inputs = keras.Input((6,), dtype="int32")
    if variational:
        embedded = vtrain.layers.VariationalEmbedding(len(WORDS) + 2, 3, name="words")(inputs)
    else:
        embedded = keras.layers.Embedding(len(WORDS) + 2, 3, name="words")(inputs)
    pooled = keras.layers.GlobalAveragePooling1D()(embedded)
    return keras.Model(inputs, keras.layers.Dense(2, name="scores")(pooled))


@keras.saving.register_keras_serializable(package="vtrain_tests")
class Bag(keras.Model):
    """A subclassed model following the protocol: `vocabulary_size` in its config."""

    def __init__(self, vocabulary_size, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.embedding = vtrain.layers.VariationalEmbedding(vocabulary_size, 3)
        self.out = keras.layers.Dense(2)

    def call(self, ids, training=False):
        return self.out(keras.ops.sum(self.embedding(ids, training=training), axis=1))

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size}


def _randomised(model):
    model(np.zeros((1, 6), "int32"))
    rng = np.random.default_rng(0)
    for weight in model.weights:
        weight.assign(rng.normal(size=weight.shape).astype("float32") + 1.0)
    layer = vocabulary.embedding_layer(model)
    if isinstance(layer, vtrain.layers.VariationalEmbedding):
        log_alpha = np.array([0, 0, -3, 5, -1, 4, -2, 0, 6, 1], "float32")[:, None]
        layer.log_alpha.assign(log_alpha)  # ids 3, 5 and 8 past the threshold
    return model


_RELOAD = """
import json, sys
import numpy as np
from vtrain import vocabulary
from tests.vocabulary import test_any_model  # registers Bag
texts = json.loads(sys.argv[1])
model, vectorizer = vocabulary.load_pruned(sys.argv[2])
np.save(sys.argv[3], np.asarray(model(vectorizer(texts))))
print(vocabulary.embedding_layer(model).input_dim)
"""


@pytest.mark.parametrize("kind", ["functional", "functional-plain", "subclassed"])
def test_export_of_a_users_model_reloads_in_a_fresh_process_with_identical_scores(tmp_path, kind):
    model = _randomised(
        Bag(len(WORDS) + 2)
        if kind == "subclassed"
        else _functional(variational=kind == "functional")
    )
    vectorizer = _vectorizer()
    keep_ids = [2, 4, 6, 7]
    with vocabulary.mask_embedding(model, keep_ids):
        expected = np.asarray(model(vectorizer(TEXTS)))
    folder = str(tmp_path / "pruned")
    sizes = vocabulary.export_pruned(model, vectorizer, keep_ids, folder)
    assert (sizes["embedding_rows_before"], sizes["embedding_rows_after"]) == (10, 6)
    scores = str(tmp_path / "scores.npy")
    run = subprocess.run(
        [sys.executable, "-c", _RELOAD, json.dumps(TEXTS), folder, scores],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split()[-1] == "6"
    np.testing.assert_allclose(np.load(scores), expected, atol=1e-6, rtol=0)


def test_rankings_sweep_and_summary_with_the_users_own_metric():
    model = _randomised(_functional(variational=True))
    layer = vocabulary.embedding_layer(model)
    assert vocabulary.variational_ranking(layer).tolist() == [2, 6, 4, 7, 9, 5, 3, 8]
    assert vocabulary.frequency_ranking(_vectorizer()).tolist() == list(range(2, 10))
    ids = _vectorizer()(tf.constant(TEXTS)).numpy()
    batches = [ids[:3], ids[3:]]

    def nonzero_tokens(m, b):
        # Tokens whose (masked) embedding row is not zero: counted in NumPy.
        table = np.asarray(vocabulary.embedding_layer(m).embeddings)
        keep = np.asarray(vocabulary.embedding_layer(m).keep_mask())
        live = (np.abs(table).sum(axis=1) > 0) & keep
        return {"live": float(np.mean([live[x][x != 0].mean() for x in b]))}

    curve = vocabulary.sweep(
        model, batches, [2, 6, 4, 7, 9, 5, 3, 8], [1, 4, 8], measure=nonzero_tokens
    )
    assert curve["sizes"] == [1, 4, 8]
    # Per batch, the fraction of its real tokens whose word is kept and
    # under the threshold ("and", "or" are [UNK], always dropped).
    expected = []
    for kept in ([2], [2, 6, 4, 7], [2, 6, 4, 7, 9, 5, 3, 8]):
        alive = sorted(set(kept) - {3, 5, 8})  # past the threshold
        per_batch = [np.isin(b[b != 0], alive).mean() for b in batches]
        expected.append(float(np.mean(per_batch)))
    assert curve["live"] == pytest.approx(expected)
    summary = vocabulary.summarise({"variational": curve}, "live", reference=expected[-1])
    # The smallest measured size from which the curve stays within 1 point
    # of the reference, read off the hand-computed values.
    first = next(
        s for i, s in enumerate([1, 4, 8]) if all(v >= expected[-1] - 0.01 for v in expected[i:])
    )
    assert summary["methods"]["variational"]["size_at_drop"]["1"] == first


def test_export_of_an_unprunable_model_says_what_is_expected(tmp_path):
    class Opaque(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.embedding = keras.layers.Embedding(10, 2)

        def call(self, ids):
            return self.embedding(ids)

    model = Opaque()
    model(np.zeros((1, 2), "int32"))
    with pytest.raises(ValueError, match="whose constructor takes vocabulary_size"):
        vocabulary.export_pruned(model, _vectorizer(), [2], str(tmp_path))
