"""No dense V x D gradient in a full vtrain training step (issue 5).

`VariationalModel` + `VariationalEmbedding` + `LazyAdam`, trained with `fit`,
with a table of 200,000 x 16 so that a dense copy (3.2M elements) cannot be
mistaken for anything else in the step. Two structural checks, no timing:

1. the gradient reaching the optimizer's `update_step` for the table is a
   `tf.IndexedSlices` (checked with and without XLA and mixed precision);
2. in the graph that `fit` traced, no op outputs V * D elements, and the
   only ops that touch the table or its Adam moments are row gathers and
   row scatters. Keras's own Adam, which densifies, fails this check (so
   the check can see a dense gradient).
"""

import keras
import numpy as np
import tensorflow as tf

import vtrain
from vtrain.optimizers import LazyAdam, SparseLossScaleOptimizer

ROWS, DIM = 200_000, 16
# Reading or writing only the rows of a batch; VariableShape reads no data.
ROW_OPS = {
    "ResourceGather",
    "ResourceScatterUpdate",
    "ResourceScatterSub",
    "ResourceScatterAdd",
    "VariableShape",
}


class RecordingLazyAdam(LazyAdam):
    """Records, at trace time, the gradient type each variable receives.

    Keyed by shape: `update_step` gets the `tf.Variable`, not the Keras one,
    and the four shapes of the test model differ.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = {}

    def update_step(self, gradient, variable, learning_rate):
        self.seen[tuple(variable.shape)] = type(gradient).__name__
        super().update_step(gradient, variable, learning_rate)


class RecordingAdam(keras.optimizers.Adam):
    """Keras's Adam, recording like `RecordingLazyAdam` (the negative control)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = {}

    def update_step(self, gradient, variable, learning_rate):
        self.seen[tuple(variable.shape)] = type(gradient).__name__
        super().update_step(gradient, variable, learning_rate)


class GraphRecordingModel(vtrain.VariationalModel):
    """Keeps the graph `fit` traces its train step into."""

    def train_step(self, data):
        self.train_graphs = [*getattr(self, "train_graphs", []), tf.compat.v1.get_default_graph()]
        return super().train_step(data)


def _train(optimizer, jit_compile=False, epochs=1):
    """Builds the mean-pooled stack, fits it, returns `(model, embedding)`."""
    ids = keras.Input((6,), dtype="int32")
    embedding = vtrain.layers.VariationalEmbedding(ROWS, DIM)
    pooled = keras.layers.GlobalAveragePooling1D()(embedding(ids))
    logits = keras.layers.Dense(4)(pooled)
    model = GraphRecordingModel(ids, logits, weight_decay=1e-4)
    model.compile(optimizer=optimizer, jit_compile=jit_compile)
    rng = np.random.default_rng(0)
    x = rng.integers(0, ROWS, (64, 6)).astype("int32")
    y = rng.integers(0, 4, 64).astype("int32")
    history = model.fit(x, y, batch_size=32, epochs=epochs, verbose=0)
    assert np.isfinite(history.history["loss"]).all(), history.history
    return model, embedding


def _inner(optimizer):
    return getattr(optimizer, "inner_optimizer", optimizer)


def _table_handles(embedding, optimizer):
    """Handles of the `[V, D]` table and of its Adam moments."""
    opt = _inner(optimizer)
    index = opt._get_variable_index(embedding.embeddings)
    variables = [embedding.embeddings, opt._momentums[index], opt._velocities[index]]
    for v in variables:
        assert tuple(v.shape) == (ROWS, DIM)
    return [v.value.handle for v in variables]


def _table_ops(graph, handles):
    """`(row_ops, dense_ops)`: how the step in `graph` touches the table.

    `row_ops` are the types of the row gathers and scatters on the table
    and its moments; `dense_ops` describes every op that produces, reads or
    writes a whole `[V, D]` tensor. Follows the handles into the branches
    of `tf.cond` (the loss-scale optimizer applies the step inside one) and
    into function calls.
    """
    inside = [inner for outer, inner in graph.captures if any(outer is h for h in handles)]
    assert len(inside) == len(handles), "the step does not capture the table"
    row_ops, dense_ops = [], []
    _walk(graph, inside, row_ops, dense_ops)
    return sorted(set(row_ops)), dense_ops


_FUNCTION_ATTRS = ("then_branch", "else_branch", "cond", "body", "f")


def _walk(graph, handles, row_ops, found):
    for op in graph.get_operations():
        for out in op.outputs:
            if out.shape.rank and out.shape.num_elements() == ROWS * DIM:
                found.append(f"{op.type} with output {out.shape}: {op.name}")
        reads = [any(i is h for h in handles) for i in op.inputs]
        bodies = [_function_graph(op, a) for a in _FUNCTION_ATTRS if _has_attr(op, a)]
        if bodies:
            # An If's first input is its predicate; the branches take the rest.
            passed = reads[1:] if op.type in ("If", "StatelessIf") else reads
            for body in bodies:
                inner = [t for t, read in zip(body.inputs, passed) if read]
                _walk(body, inner, row_ops, found)
        elif any(reads):
            if op.type in ROW_OPS:
                row_ops.append(op.type)
            else:
                found.append(f"{op.type} on the table or a moment: {op.name}")


def _has_attr(op, name):
    try:
        op.get_attr(name)
    except ValueError:
        return False
    return True


def _function_graph(op, attr):
    return op.graph._get_function(op.get_attr(attr).name).graph


def _check_graph(model, embedding, optimizer):
    (graph,) = model.train_graphs  # traced once
    row_ops, dense_ops = _table_ops(graph, _table_handles(embedding, optimizer))
    assert dense_ops == []
    # The walk did reach the update: the lookup and the row-wise Adam step.
    assert row_ops == ["ResourceGather", "ResourceScatterSub", "ResourceScatterUpdate"], row_ops


def _check_gradient_types(model, embedding, optimizer):
    seen = _inner(optimizer).seen
    assert seen[(ROWS, DIM)] == "IndexedSlices", seen
    # The KL gives every row of log_alpha a gradient each step: dense, but
    # V x 1, not V x D.
    assert tuple(embedding.log_alpha.shape) == (ROWS, 1)
    assert seen[(ROWS, 1)] != "IndexedSlices", seen
    assert len(seen) == len(model.trainable_variables), seen


def test_train_step_builds_no_dense_table():
    optimizer = RecordingLazyAdam(1e-2)
    model, embedding = _train(optimizer)
    _check_gradient_types(model, embedding, optimizer)
    _check_graph(model, embedding, optimizer)


def test_xla_train_step_gets_indexed_slices():
    # XLA compiles the traced graph further; the gradient type is what
    # can be checked before it does.
    optimizer = RecordingLazyAdam(1e-2)
    model, embedding = _train(optimizer, jit_compile=True)
    _check_gradient_types(model, embedding, optimizer)


def test_mixed_float16_with_sparse_loss_scale_builds_no_dense_table():
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    optimizer = SparseLossScaleOptimizer(RecordingLazyAdam(1e-2))
    model, embedding = _train(optimizer)
    assert type(model.optimizer) is SparseLossScaleOptimizer
    assert embedding.compute_dtype == "float16"
    assert embedding.embeddings.dtype == "float32"
    _check_gradient_types(model, embedding, optimizer)
    _check_graph(model, embedding, optimizer)


def test_mixed_float16_keras_wrapper_is_replaced_and_stays_sparse():
    # Under mixed_float16 Keras wraps the optimizer in its own
    # LossScaleOptimizer, whose finiteness check densifies; vtrain's
    # compile swaps in SparseLossScaleOptimizer.
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    optimizer = RecordingLazyAdam(1e-2)
    model, embedding = _train(optimizer)
    assert type(model.optimizer) is SparseLossScaleOptimizer
    _check_gradient_types(model, embedding, optimizer)
    _check_graph(model, embedding, optimizer)


def test_check_catches_keras_adam_densifying():
    optimizer = RecordingAdam(1e-2)
    model, embedding = _train(optimizer)
    # The gradient arrives sparse; Keras's Adam densifies it in update_step.
    assert optimizer.seen[(ROWS, DIM)] == "IndexedSlices"
    (graph,) = model.train_graphs
    _, found = _table_ops(graph, _table_handles(embedding, optimizer))
    assert any("UnsortedSegmentSum with output (200000, 16)" in f for f in found), found
    assert any(f.startswith("ReadVariableOp on the table") for f in found), found


class KerasLossScale(keras.optimizers.LossScaleOptimizer):
    """Keras's wrapper under another class, so vtrain's compile keeps it."""


def test_check_catches_keras_loss_scale_densifying():
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    optimizer = KerasLossScale(RecordingLazyAdam(1e-2))
    model, embedding = _train(optimizer)
    assert type(model.optimizer) is KerasLossScale
    (graph,) = model.train_graphs
    row_ops, found = _table_ops(graph, _table_handles(embedding, optimizer))
    # Its finiteness check densifies the gradient; the update stays sparse.
    assert any("with output (200000, 16)" in f for f in found), found
    assert "ResourceScatterSub" in row_ops
