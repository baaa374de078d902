"""Tests for vtrain.distribute: strategies by name, `example_mean`, and the
same training on one replica and on two (MirroredStrategy on 2 logical CPUs,
and MultiWorkerMirroredStrategy on two local processes): loss terms, Keras
regularizers and learning-rate multipliers count once.

The helpers at the top (`IdNoiseEmbedding`, `train`) are imported by the
subprocess scripts here, by `tests/tagging/test_multi_worker.py` and by
`tests/test_optimizers.py`.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

import vtrain
from vtrain import distribute
from vtrain.distribute import example_mean
from vtrain.layers import VariationalEmbedding

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB, LENGTH, CLASSES = 12, 5, 3
SUBPROCESS_TIMEOUT = 300  # seconds: a bound for a hung collective; ~20 s on 2 idle cores


@keras.saving.register_keras_serializable(package="vtrain_tests")
class IdNoiseEmbedding(VariationalEmbedding):
    """`VariationalEmbedding` whose training noise is a fixed function of the id.

    The real layer draws fresh Gaussian noise, and on N replicas each replica
    draws its own stream for its own slice, so no two runs see the same
    noise. Here `eps(id) = sin(1.7 id + 0.3)`: the same for a token whatever
    replica it lands on, yet non-zero, so `log_alpha` still gets a data
    gradient through `mu * (1 + sqrt(alpha) * eps)` (inference masking would
    give it none).
    """

    def call(self, inputs, training=False):
        if not training:
            return super().call(inputs, training=False)
        ids = ops.cast(inputs, "int32")
        mu = tf.gather(self.embeddings.value, ids)
        log_alpha = self.clipped_log_alpha()
        noise = tf.sin(1.7 * tf.cast(ids, "float32") + 0.3)[..., None]
        return mu * (1.0 + ops.exp(0.5 * tf.gather(log_alpha, ids)) * noise)


MODELS = {
    "stock": vtrain.VariationalModel,
    # The output layer has Keras regularizers: the `regularization` term.
    # A kernel regularizer is global (the same on every replica); an
    # activity regularizer is a per-replica batch mean, exact on even splits.
    "kernel_regularized": vtrain.VariationalModel,
    "regularized": vtrain.VariationalModel,
}
OUTPUT_REGULARIZERS = {
    "kernel_regularized": {"kernel_regularizer": "l2"},
    "regularized": {"kernel_regularizer": "l2", "activity_regularizer": "l2"},
}

# name: (model, examples, batch size, optimizer, sample weights). 19 = 8 + 8
# + 3: the last batch splits 2 + 1 on two replicas; 17 = 8 + 8 + 1: it
# splits 1 + 0, where a plain mean over the empty slice is NaN. Plain SGD is
# the sensitive optimizer: a gradient off by a factor moves the weights by
# that factor (Adam's step would hide it); lazy_adam covers the sparse path.
CASES = {
    "stock_even": ("stock", 32, 8, "sgd", False),
    "stock_uneven": ("stock", 19, 8, "sgd", False),
    "stock_one_plus_zero": ("stock", 17, 8, "sgd", False),
    "helper_uneven_weighted": ("stock", 19, 8, "sgd", True),
    "helper_one_plus_zero": ("stock", 17, 8, "lazy_adam", False),
    "multiplier_one_plus_zero": ("stock", 17, 8, "lazy_adam", False),
    "regularized_even": ("regularized", 32, 8, "sgd", False),
    "kernel_regularized_one_plus_zero": ("kernel_regularized", 17, 8, "sgd", False),
    "adam_even": ("stock", 32, 8, "adam", False),  # densifies: warned once
    # tests/tagging/test_multi_worker.py: the same as helper_uneven_weighted.
    "multi_worker": ("stock", 19, 8, "sgd", True),
    # test_two_workers_with_a_multiplier_match_one_process, below.
    "multiplier_multi_worker": ("stock", 19, 8, "lazy_adam", True),
}
# Cases trained with LazyAdam(learning_rate_multipliers=...).
MULTIPLIERS = {
    "multiplier_one_plus_zero": {"log_alpha": 5.0},
    "multiplier_multi_worker": {"log_alpha": 5.0},
}
MIRRORED_CASES = [case for case in CASES if "multi_worker" not in case]


def make_data(examples, weighted, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, VOCAB, (examples, LENGTH)).astype("int32")
    y = rng.integers(0, CLASSES, examples).astype("int32")
    weights = rng.uniform(0.5, 2.0, examples).astype("float32") if weighted else None
    return x, y, weights


def build_model(kind):
    ids = keras.Input((LENGTH,), dtype="int32")
    h = IdNoiseEmbedding(VOCAB, 4, name="embed")(ids)
    h = keras.layers.GlobalAveragePooling1D()(h)
    logits = keras.layers.Dense(CLASSES, name="out", **OUTPUT_REGULARIZERS.get(kind, {}))(h)
    model = MODELS[kind](ids, logits, weight_decay=0.05)
    # The same initial weights in every process, whatever the strategy.
    rng = np.random.default_rng(42)
    model.set_weights(
        [rng.uniform(-1.0, 1.0, w.shape).astype(w.dtype) for w in model.get_weights()]
    )
    return model


def train(strategy, case, epochs=2):
    """Trains `CASES[case]` under `strategy`; returns weights and history."""
    kind, examples, batch_size, optimizer, weighted = CASES[case]
    x, y, weights = make_data(examples, weighted)
    xv, yv, _ = make_data(7, False, seed=1)  # 4 + 3: 2 + 2, then 2 + 1
    with strategy.scope():
        model = build_model(kind)
        model.compile(
            optimizer=vtrain.optimizers.get(
                optimizer, 0.3, learning_rate_multipliers=MULTIPLIERS.get(case)
            )
        )
    history = model.fit(
        x,
        y,
        sample_weight=weights,
        batch_size=batch_size,
        epochs=epochs,
        validation_data=(xv, yv),
        validation_batch_size=4,
        shuffle=False,
        verbose=0,
    ).history
    return [w.tolist() for w in model.get_weights()], history


def compare(got, want):
    """Largest weight difference and largest relative difference of the logs."""
    (got_w, got_h), (want_w, want_h) = got, want
    weights = max(float(np.max(np.abs(np.array(a) - np.array(b)))) for a, b in zip(got_w, want_w))
    logs = {}
    keys = ["cross_entropy", "kl", "loss"]
    if "regularization" in want_h:
        keys.append("regularization")
    for key in keys + [f"val_{key}" for key in keys]:
        a, b = np.array(got_h[key]), np.array(want_h[key])
        logs[key] = float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-6)))
    return {"weights": weights, "logs": logs}


_MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np
    from vtrain import distribute
    distribute.split_cpu(2)  # before anything initialises TensorFlow
    import warnings
    from tests.test_distribute import (
        MIRRORED_CASES, compare, train, train_without_self_call)
    from vtrain.optimizers import DensifiedGradientWarning

    mirrored = distribute.get_strategy("mirrored")
    one = distribute.get_strategy("none")
    results = {"replicas": mirrored.num_replicas_in_sync}
    singles = {}
    for case in MIRRORED_CASES:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            two = train(mirrored, case)
        singles[case] = train(one, case)
        results[case] = compare(two, singles[case])
        results[case]["finite_logs"] = bool(
            all(np.isfinite(v).all() for v in two[1].values()))
        results[case]["densified_warnings"] = sum(
            issubclass(w.category, DensifiedGradientWarning) for w in caught)
        results[case]["history_keys"] = sorted(two[1])
    # The same data and optimizer with and without the multiplier.
    results["multiplier_effect"] = compare(
        singles["multiplier_one_plus_zero"], singles["helper_one_plus_zero"])["weights"]
    try:
        train_without_self_call(mirrored)
    except ValueError as error:
        results["without_self_call"] = str(error)
    print(json.dumps(results))
    """
)


class _WithoutSelfCall(vtrain.Model):
    """Calls its layers directly, not `self(x)`; one has an activity regularizer."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(1, activity_regularizer="l2")

    def compute_losses(self, data, training):
        x, y = data
        return {"mse": example_mean(ops.square(self.dense(x)[:, 0] - y))}


def train_without_self_call(strategy):
    x = np.ones((8, 2), "float32")
    with strategy.scope():
        model = _WithoutSelfCall()
        model.compile(optimizer="sgd")
    model.fit(x, x[:, 0], batch_size=8, epochs=1, verbose=0)


def run_script(script):
    """Runs `script` in a fresh, bounded Python; returns the JSON of its last line.

    A fresh process: `split_cpu` must come before TensorFlow starts.
    """
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": REPO},
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def mirrored_results():
    """Runs every case on 1 and on 2 replicas in one bounded subprocess."""
    results = run_script(_MIRRORED_SCRIPT)
    assert results.pop("replicas") == 2
    return results


@pytest.mark.parametrize(
    "case", ["stock_even", "helper_uneven_weighted", "helper_one_plus_zero", "adam_even"]
)
def test_mirrored_matches_one_replica(mirrored_results, case):
    result = mirrored_results[case]
    assert result["weights"] < 1e-5, result
    assert max(result["logs"].values()) < 1e-5, result
    assert result["finite_logs"], result


def test_mirrored_learning_rate_multiplier_matches_one_replica(mirrored_results):
    # LazyAdam(learning_rate_multipliers={"log_alpha": 5.0}), last batch 1 + 0.
    result = mirrored_results["multiplier_one_plus_zero"]
    assert result["weights"] < 1e-5, result
    assert max(result["logs"].values()) < 1e-5, result
    # Not vacuous: the multiplier moves the weights (by far more than 1e-5).
    assert mirrored_results["multiplier_effect"] > 1e-2, mirrored_results


@pytest.mark.parametrize("case", ["regularized_even", "kernel_regularized_one_plus_zero"])
def test_mirrored_keras_regularizers_count_once(mirrored_results, case):
    # Each replica adds the kernel penalty in full; the step divides the
    # total by 2 and the optimizer sums: the penalty counts once, as logged.
    result = mirrored_results[case]
    assert "regularization" in result["logs"] and "val_regularization" in result["history_keys"]
    assert result["weights"] < 1e-5, result
    assert max(result["logs"].values()) < 1e-5, result


def test_mirrored_add_loss_without_a_call_of_the_model_is_refused(mirrored_results):
    # The replicas share the layers' add_loss() lists: without self(x) in
    # compute_losses, vtrain cannot tell which replica's loss is which.
    assert mirrored_results["without_self_call"].startswith(
        "_WithoutSelfCall.compute_losses never calls the model itself (self(x)), "
        "but its layers add losses in call()"
    )
    assert "on 2 local replicas" in mirrored_results["without_self_call"]


def test_mirrored_densifying_optimizer_is_warned_about_once(mirrored_results):
    # Adam on the embedding's sparse gradient: one warning, not one per replica.
    assert mirrored_results["adam_even"]["densified_warnings"] == 1
    assert mirrored_results["helper_one_plus_zero"]["densified_warnings"] == 0  # LazyAdam


@pytest.mark.parametrize("case", ["stock_uneven", "stock_one_plus_zero"])
def test_mirrored_stock_model_on_uneven_batches(mirrored_results, case):
    # With a plain ops.mean (before vtrain.distribute.example_mean): 2 + 1
    # split, weights off by 0.087 after two epochs; 1 + 0 split,
    # cross_entropy and loss logged as NaN every epoch.
    result = mirrored_results[case]
    assert result["finite_logs"], result
    assert result["weights"] < 1e-5, result
    assert max(result["logs"].values()) < 1e-5, result


# In-process: TensorFlow here has one CPU device and no strategy.


def test_example_mean_matches_numpy():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(4, 3)).astype("float32")
    weights = rng.uniform(size=4).astype("float32")
    got = float(example_mean(values, sample_weight=weights))
    np.testing.assert_allclose(got, (values * weights[:, None]).sum() / 12, rtol=1e-6)
    assert float(example_mean(values)) == pytest.approx(values.mean(), abs=1e-6)
    assert float(example_mean(np.zeros((0, 3)))) == 0.0
    column = weights[:, None]  # Keras may hand sample weights as [B, 1]
    np.testing.assert_allclose(
        float(example_mean(values[:, 0], column)),
        (values[:, 0] * weights).sum() / 4,
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        float(example_mean(values, column)), (values * column).sum() / 12, rtol=1e-6
    )


def test_example_mean_gradient_is_the_mean_gradient():
    w = tf.Variable([1.0, 2.0, 3.0])
    with tf.GradientTape() as tape:
        value = example_mean(w * tf.constant([1.0, 1.0, 4.0]))
    np.testing.assert_allclose(tape.gradient(value, w).numpy(), [1 / 3, 1 / 3, 4 / 3])


def test_example_mean_rejects_a_scalar():
    with pytest.raises(ValueError, match="received a scalar.*rank >= 1"):
        example_mean(tf.constant(1.0))


def test_get_strategy_none_and_unknown_names():
    assert distribute.get_strategy("none").num_replicas_in_sync == 1
    with pytest.raises(ValueError, match=r"'multiworker'.*Did you mean 'multi_worker'"):
        distribute.get_strategy("multiworker")
    with pytest.raises(ValueError, match="devices= applies to 'mirrored' only"):
        distribute.get_strategy("none", devices=["/cpu:0"])


def test_get_strategy_mirrored_is_cached():
    first = distribute.get_strategy("mirrored", devices=["/cpu:0"])
    assert first.num_replicas_in_sync == 1
    assert distribute.get_strategy("mirrored", devices=["/cpu:0"]) is first


@pytest.mark.parametrize(
    "tf_config, message",
    [
        (None, "needs the TF_CONFIG environment variable, but it is not set"),
        ("", "but it is empty"),
        ("{cluster: 1}", r"not JSON .*Received '\{cluster: 1\}'"),
        ("[1]", "not a JSON object"),
        ('{"task": {"type": "worker", "index": 0}}', 'no "cluster" entry'),
        ('{"cluster": {"worker": "127.0.0.1:1"}}', r'cluster\["worker"\] must be'),
        ('{"cluster": {"worker": ["localhost"]}}', r'"host:port" strings'),
        ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}', 'no "worker"'),
        ('{"cluster": {"worker": ["a:1"]}}', 'no "task" entry'),
        (
            '{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}',
            "task type 'chief' is not a role",
        ),
        (
            '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}',
            r"task index 1 is not in \[0, 1\)",
        ),
    ],
)
def test_multi_worker_tf_config_errors(monkeypatch, tf_config, message):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ValueError, match=message) as error:
        distribute.get_strategy("multi_worker")
    # Every message shows the expected shape and the way out.
    assert '"task": {"type": "worker", "index": 0}' in str(error.value)
    assert "'mirrored'" in str(error.value)


def test_split_cpu_after_start_says_when_to_call_it():
    tf.constant(0)  # TensorFlow is initialised with one CPU device
    assert distribute.split_cpu(1) == 1
    with pytest.raises(RuntimeError, match="already initialised with 1.*program start"):
        distribute.split_cpu(2)
    with pytest.raises(ValueError, match="received 0"):
        distribute.split_cpu(0)


def test_reliability_doc_blocks_run():
    from tests.test_docs import python_blocks

    blocks = python_blocks("docs/reliability.md")
    assert blocks
    for number, block in enumerate(blocks):
        exec(compile(block, f"docs/reliability.md[block {number}]", "exec"), {})


_WORKER_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    from vtrain import distribute
    # First TensorFlow call of the process: the strategy sets up collectives.
    strategy = distribute.get_strategy("multi_worker")
    from tests.test_distribute import train

    weights, history = train(strategy, "multiplier_multi_worker")
    with open(sys.argv[1], "w") as f:
        json.dump({"replicas": strategy.num_replicas_in_sync, "weights": weights,
                   "history": history}, f)
    """
)


@pytest.mark.slow
def test_two_workers_with_a_multiplier_match_one_process(tmp_path):
    # MultiWorkerMirroredStrategy, two local processes, LazyAdam with
    # log_alpha's learning rate x 5, sample weights, last batch split 2 + 1.
    from tests import runs

    outputs = [tmp_path / f"worker{index}.json" for index in range(2)]
    runs.run_cluster(
        tmp_path, lambda index: [sys.executable, "-c", _WORKER_SCRIPT, str(outputs[index])]
    )
    first, second = (json.loads(path.read_text()) for path in outputs)
    assert first["replicas"] == second["replicas"] == 2
    for a, b in zip(first["weights"], second["weights"]):
        np.testing.assert_array_equal(np.array(a), np.array(b))
    one = train(distribute.get_strategy("none"), "multiplier_multi_worker")
    diff = compare((first["weights"], first["history"]), one)
    assert diff["weights"] < 1e-5, diff
    assert max(diff["logs"].values()) < 1e-5, diff
