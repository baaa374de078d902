"""Tests for vtrain.optimizers: LazyAdam, SparseLossScaleOptimizer, get."""

import doctest
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from vtrain import optimizers
from vtrain.optimizers import LazyAdam, SparseLossScaleOptimizer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _slices(values, indices, shape):
    return tf.IndexedSlices(
        tf.constant(values, "float32"), tf.constant(indices), tf.constant(shape)
    )


def _state(opt, var):
    """Returns (weights, m, v) of `var` as NumPy arrays."""
    i = opt._get_variable_index(var)
    return (
        var.numpy(),
        opt._momentums[i].numpy(),
        opt._velocities[i].numpy(),
    )


def _table(rows=6, dim=3, seed=0):
    init = np.random.default_rng(seed).normal(size=(rows, dim))
    return keras.Variable(init.astype("float32"), name="table")


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"amsgrad": True},
        {"weight_decay": 0.1},
        {"clipnorm": 0.5},
        {"global_clipnorm": 0.5},
    ],
    ids=lambda kw: ",".join(kw) or "plain",
)
def test_all_rows_present_matches_dense_adam(kwargs):
    rng = np.random.default_rng(1)
    lazy_var, dense_var = _table(), _table()
    lazy, dense = LazyAdam(0.05, **kwargs), keras.optimizers.Adam(0.05, **kwargs)
    for _ in range(5):
        grad = rng.normal(size=(6, 3)).astype("float32")
        order = rng.permutation(6)
        lazy.apply([_slices(grad[order], order, [6, 3])], [lazy_var])
        dense.apply([tf.constant(grad)], [dense_var])
    for got, want in zip(_state(lazy, lazy_var), _state(dense, dense_var)):
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
    assert int(lazy.iterations) == 5


@pytest.mark.parametrize(
    "kwargs", [{}, {"weight_decay": 0.1}, {"clipnorm": 0.5}, {"amsgrad": True}],
    ids=lambda kw: ",".join(kw) or "plain",
)
def test_dense_gradient_matches_keras_adam(kwargs):
    # The fused ApplyAdam kernel computes `1 - beta` in float32 (Keras in
    # Python floats): 1 - 0.999f is 1.3e-5 relative off 0.001. That, and
    # nothing else, separates the two; amsgrad uses Keras's own step.
    rng = np.random.default_rng(2)
    init = rng.normal(size=(1000, 1)).astype("float32")
    lazy_var, dense_var = keras.Variable(init), keras.Variable(init)
    lazy, dense = LazyAdam(1e-3, **kwargs), keras.optimizers.Adam(1e-3, **kwargs)
    for _ in range(10):
        grad = tf.constant(rng.normal(size=(1000, 1)).astype("float32"))
        lazy.apply([grad], [lazy_var])
        dense.apply([grad], [dense_var])
    got, want = _state(lazy, lazy_var), _state(dense, dense_var)
    if "amsgrad" in kwargs:
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
        return
    # Weights within a few float32 ulps (|w| up to 3 here), moments as far
    # apart as their `1 - beta` factors.
    np.testing.assert_allclose(got[0], want[0], rtol=3e-7, atol=1e-7)
    np.testing.assert_allclose(got[1], want[1], rtol=0, atol=3e-7)
    np.testing.assert_allclose(got[2], want[2], rtol=2e-5, atol=0)


def test_dense_gradient_uses_the_fused_kernel():
    var = keras.Variable(np.zeros((4, 1), "float32"))
    opt = LazyAdam()
    opt.build([var])
    step = tf.function(lambda g: opt.apply([g], [var]))
    graph = step.get_concrete_function(tf.TensorSpec((4, 1))).graph
    ops_used = {op.type for f in [graph, *graph._functions.values()]
                for op in getattr(f, "get_operations", lambda: f.graph.get_operations())()}
    assert "ResourceApplyAdam" in ops_used


@pytest.mark.parametrize("kwargs", [{}, {"amsgrad": True, "weight_decay": 0.1}])
def test_absent_rows_are_bit_identical(kwargs):
    var = _table()
    opt = LazyAdam(0.05, **kwargs)
    # First step touches every row so all moments are non-zero.
    opt.apply([_slices(np.ones((6, 3)), list(range(6)), [6, 3])], [var])
    before = _state(opt, var)
    opt.apply([_slices(np.full((2, 3), -2.0), [1, 3], [6, 3])], [var])
    after = _state(opt, var)
    absent, touched = [0, 2, 4, 5], [1, 3]
    for b, a in zip(before, after):
        np.testing.assert_array_equal(b[absent], a[absent])
        assert np.all(b[touched] != a[touched])


def test_duplicate_ids_are_summed():
    g1, g2 = np.array([[0.5, -1.0, 2.0]]), np.array([[1.5, 3.0, -1.0]])
    dup_var, sum_var = _table(), _table()
    dup, summed = LazyAdam(0.1), LazyAdam(0.1)
    for _ in range(2):
        dup.apply([_slices(np.concatenate([g1, g2]), [2, 2], [6, 3])], [dup_var])
        summed.apply([_slices(g1 + g2, [2], [6, 3])], [sum_var])
    for got, want in zip(_state(dup, dup_var), _state(summed, sum_var)):
        np.testing.assert_allclose(got, want, atol=1e-7, rtol=0)


def test_matches_numpy_adam_with_global_bias_correction():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-7
    var = _table()
    w0 = var.numpy()[0].astype("float64")
    opt = LazyAdam(lr, beta_1=b1, beta_2=b2, epsilon=eps)
    grads = {1: [0.3, -2.0, 1.0], 3: [-1.0, 0.5, 4.0]}
    # Row 0 appears at steps 1 and 3; step 2 touches only row 4.
    opt.apply([_slices([grads[1]], [0], [6, 3])], [var])
    opt.apply([_slices([[9.0, 9.0, 9.0]], [4], [6, 3])], [var])
    opt.apply([_slices([grads[3]], [0], [6, 3])], [var])

    w, m, v = w0, np.zeros(3), np.zeros(3)
    for t, g in grads.items():  # lazy: one decay per appearance, not per step
        g = np.array(g)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        # Keras's Adam: epsilon is the paper's "epsilon hat".
        alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        w = w - alpha * m / (np.sqrt(v) + eps)
    got_w, got_m, got_v = _state(opt, var)
    np.testing.assert_allclose(got_w[0], w, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got_m[0], m, rtol=1e-6)
    np.testing.assert_allclose(got_v[0], v, rtol=1e-6)


@keras.saving.register_keras_serializable(package="vtrain_tests")
class GatherModel(keras.Model):
    """Embedding by `tf.gather` (sparse gradient), mean-pooled, then Dense."""

    def __init__(self, vocab=50, dim=4, **kwargs):
        super().__init__(**kwargs)
        self.vocab, self.dim = vocab, dim
        self.table = self.add_weight(
            shape=(vocab, dim), initializer="random_normal", name="table"
        )
        self.head = keras.layers.Dense(1)
        # Variables must exist after __init__: otherwise load_model builds a
        # smaller optimizer and skips its saved state with only a warning.
        self.head.build((None, dim))

    def call(self, ids):
        # Under MirroredStrategy, fit's symbolic build passes float32 ids.
        ids = tf.cast(ids, "int32")
        return self.head(tf.reduce_mean(tf.gather(self.table, ids), axis=1))

    def get_config(self):
        return {**super().get_config(), "vocab": self.vocab, "dim": self.dim}


class RecordingLazyAdam(LazyAdam):
    """Records the gradient type per variable at trace time."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = {}

    def update_step(self, gradient, variable, learning_rate):
        self.seen[tuple(variable.shape)] = type(gradient).__name__
        super().update_step(gradient, variable, learning_rate)


def _data(n=64, vocab=50, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, size=(n, 3))
    y = (ids.sum(axis=1, keepdims=True) % 7 / 7.0).astype("float32")
    return ids.astype("int32"), y


@pytest.mark.parametrize(
    "wrap", [None, keras.optimizers.LossScaleOptimizer, SparseLossScaleOptimizer]
)
@pytest.mark.parametrize("jit_compile", [False, True])
def test_fit_gets_indexed_slices_and_learns(jit_compile, wrap):
    keras.utils.set_random_seed(0)
    model = GatherModel()
    opt = RecordingLazyAdam(0.05, weight_decay=1e-3, global_clipnorm=5.0)
    model.compile(
        optimizer=wrap(opt) if wrap else opt, loss="mse", jit_compile=jit_compile
    )
    ids, y = _data()
    losses = model.fit(ids, y, batch_size=16, epochs=4, verbose=0).history["loss"]
    assert losses[-1] < 0.7 * losses[0], losses
    assert opt.seen[(50, 4)] == "IndexedSlices", opt.seen
    assert "IndexedSlices" not in (opt.seen[(4, 1)], opt.seen[(1,)]), opt.seen


@pytest.mark.parametrize(
    "wrap", [keras.optimizers.LossScaleOptimizer, SparseLossScaleOptimizer]
)
def test_loss_scale_optimizer_unscales_sparse_gradients(wrap):
    grad = np.array([[0.5, -1.0, 2.0], [1.0, 1.0, 1.0]])
    plain_var, scaled_var = _table(), _table()
    plain, scaled = LazyAdam(0.1), wrap(LazyAdam(0.1), initial_scale=1024.0)
    for _ in range(2):
        plain.apply([_slices(grad, [1, 4], [6, 3])], [plain_var])
        scaled.apply([_slices(grad * 1024.0, [1, 4], [6, 3])], [scaled_var])
    got = _state(scaled.inner_optimizer, scaled_var)
    for g, w in zip(got, _state(plain, plain_var)):
        np.testing.assert_allclose(g, w, atol=1e-7, rtol=0)


def test_sparse_loss_scale_skips_non_finite_step():
    var = _table()
    before = var.numpy()
    opt = SparseLossScaleOptimizer(LazyAdam(0.1), initial_scale=8.0)
    opt.apply([_slices([[1.0, np.inf, 0.0]], [2], [6, 3])], [var])
    np.testing.assert_array_equal(var.numpy(), before)
    assert float(opt.dynamic_scale) == 4.0


def test_loss_scale_factor_with_sparse_gradient():
    grad = np.array([[0.5, -1.0, 2.0]])
    plain_var, scaled_var = _table(), _table()
    plain, scaled = LazyAdam(0.1), LazyAdam(0.1, loss_scale_factor=64.0)
    plain.apply([_slices(grad, [3], [6, 3])], [plain_var])
    scaled.apply([_slices(grad * 64.0, [3], [6, 3])], [scaled_var])
    np.testing.assert_allclose(scaled_var.numpy(), plain_var.numpy(), atol=1e-7)
    assert scaled.loss_scale_factor == 64.0


def test_keras_file_round_trip_restores_optimizer_state(tmp_path):
    keras.utils.set_random_seed(0)
    ids, y = _data()
    model = GatherModel()
    model.compile(optimizer=LazyAdam(0.01, weight_decay=1e-3), loss="mse")
    model.fit(ids, y, batch_size=16, epochs=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)

    assert type(loaded.optimizer) is LazyAdam
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert int(loaded.optimizer.iterations) == 4
    want = [v.numpy() for v in model.optimizer.variables]
    got = [v.numpy() for v in loaded.optimizer.variables]
    assert len(got) == len(want) == 8  # iterations, lr, (m, v) x 3 variables
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    # Same state, same next step.
    for m in (model, loaded):
        m.fit(ids[:16], y[:16], batch_size=16, epochs=1, verbose=0, shuffle=False)
    for g, w in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_allclose(g, w, atol=1e-7)


_MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np
    from tests.test_optimizers import GatherModel, RecordingLazyAdam, _data
    from vtrain.optimizers import SparseLossScaleOptimizer

    # Few ids so the two replicas' slices share rows: the all-reduce then
    # concatenates repeated indices, which the optimizer must sum.
    ids, y = _data(n=32, vocab=8)
    keras.utils.set_random_seed(0)
    init = GatherModel(vocab=8)
    init(ids[:1])
    weights = init.get_weights()

    def train(strategy, wrap, **kwargs):
        with strategy.scope():
            model = GatherModel(vocab=8)
            model(ids[:1])
            model.set_weights(weights)
            opt = RecordingLazyAdam(0.05, **kwargs)
            model.compile(optimizer=wrap(opt) if wrap else opt, loss="mse")
        model.fit(ids, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        # Moments too: Adam's step is almost scale-invariant, its moments not.
        return model.get_weights() + [v.numpy() for v in opt.variables], opt.seen

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    single = tf.distribute.OneDeviceStrategy("/cpu:0")
    results = {"replicas": mirrored.num_replicas_in_sync}
    for name, wrap, kwargs in [
        ("plain", None, {}),
        ("loss_scale_factor", None, {"loss_scale_factor": 4.0}),
        ("sparse_lso", SparseLossScaleOptimizer, {}),
    ]:
        got, seen = train(mirrored, wrap, **kwargs)
        want, _ = train(single, wrap, **kwargs)
        results[name] = {
            "max_diff": max(float(np.abs(a - b).max()) for a, b in zip(got, want)),
            "moved": float(np.abs(got[0] - weights[0]).max()),
            "seen": seen[(8, 4)],
        }
    print(json.dumps(results))
    """
)


def test_mirrored_strategy_matches_single_replica():
    env = {**os.environ, "PYTHONPATH": REPO}
    run = subprocess.run(
        [sys.executable, "-c", _MIRRORED_SCRIPT],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout.strip().splitlines()[-1])
    assert results.pop("replicas") == 2
    for result in results.values():
        assert result["max_diff"] < 1e-5, results
        assert result["moved"] > 1e-3, results
        assert result["seen"] == "IndexedSlices", results


_SPARSE_OPS = {"ResourceGather", "ResourceScatterUpdate", "ResourceScatterSub"}
_ROWS = 1_000_000


def _big_gradient():
    # Built from constants inside the traced function, so that shape
    # inference sees `dense_shape` and gives a densified gradient a static
    # 1,000,000-row shape.
    return _slices(np.ones((3, 8)), [7, 123_456, 7], [_ROWS, 8])


def _dense_ops(fn, big_variables):
    """Ops in the graph of `fn()` that touch all rows of a 1M-row tensor.

    Two checks: every op reading a big variable's handle must be a row
    gather/scatter, and no op output may have a static dimension of 1M.
    """
    graph = tf.function(fn).get_concrete_function().graph
    handles = [v.value.handle for v in big_variables]
    placeholders = [
        inner for outer, inner in graph.captures if any(outer is h for h in handles)
    ]
    assert len(placeholders) == len(big_variables)
    dense = []
    for op in graph.get_operations():
        reads_big = any(any(i is p for p in placeholders) for i in op.inputs)
        if reads_big and op.type not in _SPARSE_OPS:
            dense.append(op.type)
        for out in op.outputs:
            if out.shape.rank and _ROWS in out.shape.as_list():
                dense.append(f"{op.type}{out.shape}")
    return dense


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"amsgrad": True, "weight_decay": 0.01},
        {"global_clipnorm": 1.0},
        {"clipnorm": 1.0},
    ],
    ids=lambda kw: ",".join(kw) or "plain",
)
def test_step_on_a_million_rows_creates_no_dense_table(kwargs):
    table = keras.Variable(tf.zeros([_ROWS, 8]), name="big_table")
    bias = keras.Variable(tf.zeros([8]), name="bias")

    def big(opt):
        return [table] + [v for v in opt.variables if v.shape[:1] == (_ROWS,)]

    opt = LazyAdam(**kwargs)
    opt.build([table, bias])
    assert len(big(opt)) == (4 if kwargs.get("amsgrad") else 3)
    step = lambda: opt.apply([_big_gradient(), tf.ones([8])], [table, bias])
    assert _dense_ops(step, big(opt)) == []

    # The check does catch densification: Keras's Adam fails it.
    adam = keras.optimizers.Adam(**kwargs)
    adam.build([table, bias])
    step = lambda: adam.apply([_big_gradient(), tf.ones([8])], [table, bias])
    assert _dense_ops(step, big(adam)) != []


def test_sparse_finiteness_check_creates_no_dense_table():
    sparse = SparseLossScaleOptimizer(LazyAdam())
    assert _dense_ops(lambda: sparse.check_finite([_big_gradient()]), []) == []
    # Keras's check densifies the gradient (reported to the team).
    keras_lso = keras.optimizers.LossScaleOptimizer(LazyAdam())
    assert _dense_ops(lambda: keras_lso.check_finite([_big_gradient()]), []) != []


def test_get_maps_names_and_passes_instances_through():
    opt = optimizers.get("Lazy-Adam", 0.02)
    assert type(opt) is LazyAdam
    np.testing.assert_allclose(float(opt.learning_rate), 0.02)
    assert type(optimizers.get("sgd")) is keras.optimizers.SGD
    assert optimizers.get(opt) is opt


def test_get_errors_name_the_problem():
    expected = r"'lazy_adan'. Expected one of \['adagrad', .*Did you mean 'lazy_adam'\?"
    with pytest.raises(ValueError, match=expected):
        optimizers.get("lazy_adan")
    with pytest.raises(ValueError, match="learning_rate=None"):
        optimizers.get(LazyAdam(), 0.1)
    with pytest.raises(TypeError, match="received int: 3"):
        optimizers.get(3)


def test_docstring_examples_run():
    result = doctest.testmod(optimizers)
    assert result.attempted >= 10 and result.failed == 0
