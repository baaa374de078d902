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

from tests.test_distribute import build_model, make_data
from vtrain import layers as vtrain_layers
from vtrain import optimizers
from vtrain.callbacks import AtomicBackupAndRestore
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
    "kwargs",
    [{}, {"weight_decay": 0.1}, {"clipnorm": 0.5}, {"amsgrad": True}],
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
    ops_used = {
        op.type
        for f in [graph, *graph._functions.values()]
        for op in getattr(f, "get_operations", lambda f=f: f.graph.get_operations())()
    }
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
        self.table = self.add_weight(shape=(vocab, dim), initializer="random_normal", name="table")
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
    model.compile(optimizer=wrap(opt) if wrap else opt, loss="mse", jit_compile=jit_compile)
    ids, y = _data()
    losses = model.fit(ids, y, batch_size=16, epochs=4, verbose=0).history["loss"]
    assert losses[-1] < 0.7 * losses[0], losses
    assert opt.seen[(50, 4)] == "IndexedSlices", opt.seen
    assert "IndexedSlices" not in (opt.seen[(4, 1)], opt.seen[(1,)]), opt.seen


@pytest.mark.parametrize("wrap", [keras.optimizers.LossScaleOptimizer, SparseLossScaleOptimizer])
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
    placeholders = [inner for outer, inner in graph.captures if any(outer is h for h in handles)]
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
        {"learning_rate_multipliers": {"big_table": 5.0}},
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

    def step():
        return opt.apply([_big_gradient(), tf.ones([8])], [table, bias])

    assert _dense_ops(step, big(opt)) == []

    # The check does catch densification: Keras's Adam fails it.
    kwargs.pop("learning_rate_multipliers", None)
    adam = keras.optimizers.Adam(**kwargs)
    adam.build([table, bias])

    def dense_step():
        return adam.apply([_big_gradient(), tf.ones([8])], [table, bias])

    assert _dense_ops(dense_step, big(adam)) != []


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


# --------------------------------------------------------------------------
# Learning-rate multipliers


def _two_variables():
    """A 6 x 3 table (sparse gradients) and a 6 x 1 `log_alpha` (dense)."""
    rng = np.random.default_rng(3)
    table = keras.Variable(rng.normal(size=(6, 3)).astype("float32"), name="table")
    log_alpha = keras.Variable(rng.uniform(0, 3, (6, 1)).astype("float32"), name="log_alpha")
    return table, log_alpha


def _gradients(steps=4, seed=4):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        rows = rng.choice(6, size=3, replace=True)  # a repeated id, some rows absent
        yield (
            _slices(rng.normal(size=(3, 3)), rows, [6, 3]),
            tf.constant(rng.normal(size=(6, 1)), "float32"),
        )


@pytest.mark.parametrize(
    "kwargs", [{}, {"weight_decay": 0.1}, {"amsgrad": True}], ids=lambda kw: ",".join(kw) or "plain"
)
@pytest.mark.parametrize("key", ["log_alpha", "table"], ids=["dense_path", "sparse_path"])
def test_multiplier_is_adam_with_a_larger_learning_rate(key, kwargs):
    lr, factor = 0.01, 5.0
    got = _two_variables()
    opt = LazyAdam(lr, learning_rate_multipliers={key: factor}, **kwargs)
    # Reference 1: one optimizer per variable, the multiplied one at lr * factor.
    ref = _two_variables()
    ref_opts = [LazyAdam(lr * factor if v.name == key else lr, **kwargs) for v in ref]
    # Reference 2: the old application code, `before + factor * (after - before)`.
    old = _two_variables()
    old_opt = LazyAdam(lr, **kwargs)
    scaled = [v for v in old if v.name == key][0]
    for grads in _gradients():
        opt.apply(list(grads), list(got))
        for g, v, o in zip(grads, ref, ref_opts):
            o.apply([g], [v])
        before = scaled.numpy()
        old_opt.apply(list(grads), list(old))
        scaled.assign(before + factor * (scaled.numpy() - before))
    for g, r, o in zip(got, ref, old):
        np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(g.numpy(), o.numpy(), rtol=1e-5, atol=1e-6)
    for g, r, o in zip(got, ref, ref_opts):  # and the same moments
        for mine, theirs in zip(_state(opt, g)[1:], _state(o, r)[1:]):
            np.testing.assert_allclose(mine, theirs, rtol=1e-6, atol=1e-7)
    moved = [np.abs(g.numpy() - s.numpy()).max() for g, s in zip(got, _two_variables())]
    assert min(moved) > 1e-3  # both variables trained


def test_sgd_multiplier_with_momentum_matches_separate_optimizers():
    got, ref = _two_variables(), _two_variables()
    opt = optimizers.SGD(0.1, momentum=0.9, learning_rate_multipliers={"log_alpha": 3.0})
    ref_opts = [keras.optimizers.SGD(0.1, momentum=0.9), keras.optimizers.SGD(0.3, momentum=0.9)]
    for grads in _gradients():
        opt.apply(list(grads), list(got))
        for g, v, o in zip(grads, ref, ref_opts):
            o.apply([g], [v])
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=1e-6, atol=1e-7)


def _two_embeddings():
    ids = keras.Input((2,), dtype="int32")
    words = vtrain_layers.VariationalEmbedding(5, 2, name="words")(ids)
    tags = vtrain_layers.VariationalEmbedding(5, 2, name="tags")(ids)
    return keras.Model(ids, keras.layers.Add()([words, tags]), name="net")


@pytest.mark.parametrize(
    "multipliers, expected",
    [
        ({"log_alpha": 5.0}, {"words/log_alpha": 5.0, "tags/log_alpha": 5.0}),
        ({"words/log_alpha": 5.0}, {"words/log_alpha": 5.0}),
        (
            {"tags/log_alpha": 2.0, "embeddings": 0.5},
            {"tags/log_alpha": 2.0, "words/embeddings": 0.5, "tags/embeddings": 0.5},
        ),
        (
            {"log_alpha": 5.0, "words/log_alpha": 5.0},
            {"words/log_alpha": 5.0, "tags/log_alpha": 5.0},
        ),
    ],
)
def test_multiplier_keys_match_names_and_whole_path_suffixes(multipliers, expected):
    model = _two_embeddings()
    opt = LazyAdam(learning_rate_multipliers=multipliers)
    opt.build(model.trainable_variables)
    got = {v.path: opt.learning_rate_multiplier(v) for v in model.trainable_variables}
    assert got == {path: expected.get(path, 1.0) for path in got}


@pytest.mark.parametrize(
    "multipliers, message",
    [
        (
            {"alpha": 5.0},
            r"key 'alpha' matches no variable\. Expected a variable name or a "
            r"'/'-separated path suffix of one of the 4 trained variables: "
            r"'words/embeddings', .*Did you mean 'log_alpha'\?",
        ),
        (
            {"log_alpha": 5.0, "words/log_alpha": 2.0},
            r"gives the variable 'words/log_alpha' two factors: 'log_alpha': 5.0, "
            r"'words/log_alpha': 2.0",
        ),
    ],
)
def test_multiplier_keys_that_match_nothing_or_conflict_fail_at_build(multipliers, message):
    model = _two_embeddings()
    model.compile(optimizer=LazyAdam(learning_rate_multipliers=multipliers), loss="mse")
    with pytest.raises(ValueError, match=message):
        model.fit(np.zeros((2, 2), "int32"), np.zeros((2, 2, 2)), verbose=0)


@pytest.mark.parametrize(
    "multipliers, error, message",
    [
        ([("log_alpha", 5.0)], TypeError, r"must be a dict .* received list"),
        ({"log_alpha": 0.0}, ValueError, r"\['log_alpha'\]: received 0.0; expected a positive"),
        ({"log_alpha": -1}, ValueError, r"received -1; expected a positive finite"),
        ({"log_alpha": "5"}, ValueError, r"received '5'; expected a positive"),
        ({"log_alpha": True}, ValueError, r"received True"),
        ({"/log_alpha": 2.0}, ValueError, r"key '/log_alpha': expected a variable name"),
        ({"": 2.0}, ValueError, r"key '': expected a variable name"),
    ],
)
def test_invalid_multipliers_say_what_was_received(multipliers, error, message):
    with pytest.raises(error, match=message):
        LazyAdam(learning_rate_multipliers=multipliers)


def test_multipliers_survive_get_config_and_serialization():
    opt = LazyAdam(0.02, weight_decay=0.1, learning_rate_multipliers={"log_alpha": 5})
    config = opt.get_config()
    assert config["learning_rate_multipliers"] == {"log_alpha": 5.0}
    again = LazyAdam.from_config(config)
    assert again.learning_rate_multipliers == {"log_alpha": 5.0}
    assert again.get_config() == config
    restored = keras.optimizers.deserialize(json.loads(json.dumps(keras.optimizers.serialize(opt))))
    assert type(restored) is LazyAdam and restored.get_config() == config
    # No multipliers: the config holds None, and older configs (no key) load.
    assert LazyAdam().get_config()["learning_rate_multipliers"] is None
    old = {k: v for k, v in LazyAdam().get_config().items() if k != "learning_rate_multipliers"}
    assert LazyAdam.from_config(old).learning_rate_multipliers == {}


def test_get_passes_multipliers_to_lazy_adam_and_sgd():
    multipliers = {"log_alpha": 5.0}
    lazy = optimizers.get("lazy_adam", 1e-3, learning_rate_multipliers=multipliers)
    assert type(lazy) is LazyAdam and lazy.learning_rate_multipliers == multipliers
    sgd = optimizers.get("sgd", 0.1, learning_rate_multipliers=multipliers)
    assert type(sgd) is optimizers.SGD and sgd.learning_rate_multipliers == multipliers
    assert type(optimizers.get("sgd", 0.1, learning_rate_multipliers={})) is keras.optimizers.SGD
    with pytest.raises(
        ValueError,
        match=r"'adam' received learning_rate_multipliers=.*"
        r"only \['lazy_adam', 'sgd'\] take them",
    ):
        optimizers.get("adam", 1e-3, learning_rate_multipliers=multipliers)
    with pytest.raises(
        ValueError,
        match=r"learning_rate_multipliers=\{'log_alpha': 5.0\}.*"
        r"pass learning_rate_multipliers=None",
    ):
        optimizers.get(LazyAdam(), learning_rate_multipliers=multipliers)


def _log_alpha_model(multiplier):
    """`tests.test_distribute`'s model (deterministic noise), LazyAdam with a multiplier."""
    model = build_model("stock")
    model.compile(
        optimizer=optimizers.get(
            "lazy_adam", 0.05, learning_rate_multipliers={"log_alpha": multiplier}
        )
    )
    return model


def test_keras_file_round_trip_keeps_the_multiplier(tmp_path):
    x, y, _ = make_data(16, False)
    model = _log_alpha_model(5.0)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.optimizer) is LazyAdam
    assert loaded.optimizer.learning_rate_multipliers == {"log_alpha": 5.0}
    log_alpha = [v for v in loaded.trainable_variables if v.name == "log_alpha"][0]
    assert loaded.optimizer.learning_rate_multiplier(log_alpha) == 5.0
    for m in (model, loaded):
        m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for got, want in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("simulated kill after epoch 1")


def test_backup_and_restore_resume_keeps_the_multiplier(tmp_path):
    x, y, _ = make_data(19, False)
    fit = dict(batch_size=8, epochs=4, shuffle=False, verbose=0)
    whole = _log_alpha_model(5.0)
    whole.fit(x, y, **fit)
    keras.utils.clear_session()  # the same layer names as in a new process
    killed = _log_alpha_model(5.0)
    with pytest.raises(RuntimeError, match="simulated kill"):
        killed.fit(x, y, callbacks=[AtomicBackupAndRestore(tmp_path), _Interrupt()], **fit)
    # A new process builds the same model and optimizer, then resumes.
    keras.utils.clear_session()
    resumed = _log_alpha_model(5.0)
    history = resumed.fit(x, y, callbacks=[AtomicBackupAndRestore(tmp_path)], **fit).history
    assert len(history["loss"]) == 2  # epochs 2 and 3
    assert int(resumed.optimizer.iterations.numpy()) == 4 * 3
    for got, want in zip(resumed.get_weights(), whole.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    # Not vacuous: without the multiplier the run ends elsewhere.
    plain = _log_alpha_model(1.0)
    plain.fit(x, y, **fit)
    assert max(np.abs(a - b).max() for a, b in zip(plain.get_weights(), whole.get_weights())) > 1e-2


@pytest.mark.parametrize(
    "optimizer, row_wise",
    [
        (LazyAdam(), True),
        (LazyAdam(learning_rate_multipliers={"table": 2.0}), True),
        (SparseLossScaleOptimizer(LazyAdam()), True),
        (keras.optimizers.SGD(0.1), True),
        (optimizers.SGD(0.1, learning_rate_multipliers={"table": 2.0}), True),
        (keras.optimizers.SGD(0.1, momentum=0.9), False),
        (keras.optimizers.SGD(0.1, weight_decay=0.01), False),
        (keras.optimizers.Adam(), False),
        (keras.optimizers.AdamW(), False),
        (keras.optimizers.RMSprop(), False),
        (keras.optimizers.Adagrad(), False),
        (keras.optimizers.LossScaleOptimizer(LazyAdam()), False),
        (SparseLossScaleOptimizer(keras.optimizers.Adam()), False),
        (LazyAdam(use_ema=True), False),
        (LazyAdam(gradient_accumulation_steps=2), False),
    ],
    ids=lambda o: getattr(o, "name", str(o)),
)
def test_is_row_wise(optimizer, row_wise):
    assert optimizers.is_row_wise(optimizer) is row_wise


@pytest.mark.parametrize("name", ["sgd", "sgd_multiplied"])
def test_sgd_without_momentum_applies_sparse_gradients_row_wise(name):
    # The claim behind is_row_wise(SGD()): no op touches all 1M rows.
    table = keras.Variable(tf.zeros([_ROWS, 8]), name="big_table")
    opt = (
        optimizers.SGD(0.1, learning_rate_multipliers={"big_table": 2.0})
        if name == "sgd_multiplied"
        else keras.optimizers.SGD(0.1)
    )
    opt.build([table])

    def step():
        return opt.apply([_big_gradient()], [table])

    assert _dense_ops(step, [table]) == []
