"""Optimizers: a row-wise ("lazy") Adam for sparse gradients, and `get`.

On the TensorFlow backend a `tf.gather` lookup into an embedding table gives a
`tf.IndexedSlices` gradient. Keras's `Adam` turns it into a dense update, so a
step costs O(V * D) however few rows the batch touched. `LazyAdam` updates only
the touched rows, so the cost follows the batch, not the vocabulary.
"""

import difflib

import keras
import tensorflow as tf

try:
    # Private but stable since TF 1: is the graph being built for XLA?
    from tensorflow.python.ops.control_flow_util import (
        GraphOrParentsInXlaContext as _graph_in_xla,
    )
except ImportError:  # pragma: no cover

    def _graph_in_xla(graph):
        return True  # the XLA-safe path everywhere


@keras.saving.register_keras_serializable(package="vtrain")
class LazyAdam(keras.optimizers.Adam):
    """Adam that updates only the rows present in a `tf.IndexedSlices` gradient.

    Takes exactly the arguments of `keras.optimizers.Adam` (including
    `amsgrad`). Dense gradients get Keras's Adam formulas, computed in one
    pass by TensorFlow's fused `ApplyAdam` kernel (Keras's own step with
    `amsgrad`); the result equals Keras's to float32 rounding. For a
    `tf.IndexedSlices` gradient (e.g. from `tf.gather(table, ids)`):

    1. gradients of repeated ids are summed, as the dense gradient would be;
    2. the first and second moments `m`, `v` of those rows are gathered,
       updated with the Adam formulas and scattered back;
    3. the variable rows are moved by `lr_t * m / (sqrt(v) + epsilon)` with
       `lr_t = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)` and
       `t = iterations + 1`, the global step, exactly as in Keras's Adam.

    Rows absent from the batch keep their weights *and* moments.

    **How this differs from dense Adam.** Dense Adam decays `m` and `v` of
    every row every step, even when the row's gradient is zero, so a row keeps
    moving for many steps after its last gradient, and its `v` shrinks while it
    is absent. Lazy Adam leaves an absent row alone: a rare word's moments are
    frozen between its appearances, and when it comes back its old `m` is
    decayed only once. The two are identical when every row appears in every
    batch. This is the usual choice for large embedding tables; it is *not*
    an approximation of the dense step for rarely seen rows.

    **Weight decay** (`weight_decay=...`) is decoupled, as in AdamW:
    `w -= lr * weight_decay * w` before the Adam step, but for a sparse
    gradient only on the rows in the batch (decaying all V rows every step
    would bring back the O(V * D) cost). Dense gradients decay the whole
    variable, as in Keras.

    **Clipping.** `clipnorm`, `clipvalue` and `global_clipnorm` work with
    `tf.IndexedSlices`; repeated ids are summed first, so the norm is the
    norm of the dense gradient. (On the TF backend Keras clips each
    replica's gradient *before* the cross-replica sum.)

    **Loss scaling.** `keras.optimizers.LossScaleOptimizer` wrapping this
    optimizer keeps the gradient sparse, but its finiteness check densifies
    every gradient once per step; use `SparseLossScaleOptimizer` to avoid it.
    `gradient_accumulation_steps` and `use_ema` keep dense per-variable
    state, so they make steps O(V * D) again.

    Example: two gradients for row 1 in one batch; the other rows and
    their moments do not move.

    >>> import numpy as np
    >>> import tensorflow as tf
    >>> table = keras.Variable(np.ones((4, 2), "float32"))
    >>> opt = LazyAdam(learning_rate=0.1)
    >>> grad = tf.IndexedSlices(
    ...     values=tf.constant([[1.0, -1.0], [1.0, -1.0]]),
    ...     indices=tf.constant([1, 1]),
    ...     dense_shape=tf.constant([4, 2]))
    >>> opt.apply([grad], [table])
    >>> np.round(table.numpy(), 4)
    array([[1. , 1. ],
           [0.9, 1.1],
           [1. , 1. ],
           [1. , 1. ]], dtype=float32)
    >>> np.round(opt.variables[2].numpy()[:2], 4)  # momentum: 0.1 * (1 + 1)
    array([[ 0. ,  0. ],
           [ 0.2, -0.2]], dtype=float32)
    """

    def update_step(self, gradient, variable, learning_rate):
        """Applies one Adam step; row-wise if `gradient` is `IndexedSlices`."""
        if isinstance(gradient, tf.IndexedSlices):
            self._sparse_update_step(gradient, variable, learning_rate)
            return
        if self._decays(variable):
            lr = tf.cast(learning_rate, variable.dtype)
            wd = tf.cast(self.weight_decay, variable.dtype)
            self.assign_sub(variable, variable * wd * lr)
        if self.amsgrad:
            super().update_step(gradient, variable, learning_rate)
        else:
            self._fused_dense_step(gradient, variable, learning_rate)

    def _fused_dense_step(self, gradient, variable, learning_rate):
        # TF's ApplyAdam kernel computes Keras's Adam formulas in one pass
        # over the variable instead of about ten element-wise ops, each
        # reading and writing it. It matters for a V x 1 log_alpha, which
        # gets a dense (KL) gradient on every row at every step.
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=_tf_variable(variable).handle,
            m=_tf_variable(self._momentums[index]).handle,
            v=_tf_variable(self._velocities[index]).handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
            use_locking=False,
        )

    def _sparse_update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        indices, grad = _sum_duplicates(gradient)
        grad = tf.cast(grad, dtype)
        lr = tf.cast(learning_rate, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        alpha = lr * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))

        index = self._get_variable_index(variable)
        m_var, v_var = self._momentums[index], self._velocities[index]
        m = _rows(m_var, indices)
        v = _rows(v_var, indices)
        # Same expressions as keras.optimizers.Adam (`1 - beta` in Python
        # precision), so a batch touching every row reproduces the dense step.
        m = m + (grad - m) * tf.cast(1 - self.beta_1, dtype)
        v = v + (tf.square(grad) - v) * tf.cast(1 - self.beta_2, dtype)
        self.assign(m_var, tf.IndexedSlices(m, indices))
        self.assign(v_var, tf.IndexedSlices(v, indices))
        if self.amsgrad:
            v_hat_var = self._velocity_hats[index]
            v = tf.maximum(_rows(v_hat_var, indices), v)
            self.assign(v_hat_var, tf.IndexedSlices(v, indices))

        if self._decays(variable):
            wd = tf.cast(self.weight_decay, dtype)
            decay = _rows(variable, indices) * wd * lr
            self.assign_sub(variable, tf.IndexedSlices(decay, indices))
        step_rows = (m * alpha) / (tf.sqrt(v) + self.epsilon)
        self.assign_sub(variable, tf.IndexedSlices(step_rows, indices))

    def _apply_weight_decay(self, variables):
        # Keras decays every variable densely here, before `update_step` runs
        # and without seeing the gradient. `update_step` does it instead, so
        # that a sparse gradient decays only its own rows.
        return

    def _decays(self, variable):
        return self.weight_decay is not None and self._use_weight_decay(variable)

    def _clip_gradients(self, grads):
        if not any(isinstance(g, tf.IndexedSlices) for g in grads):
            return super()._clip_gradients(grads)
        if not (self.clipnorm or self.clipvalue or self.global_clipnorm):
            return grads
        # A repeated id contributes one dense row, so sum repeats before
        # measuring norms.
        grads = [_dedup(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
        if self.global_clipnorm and self.global_clipnorm > 0:
            # Keras's clip_by_global_norm computes `g * scale`, which
            # IndexedSlices does not support.
            return _clip_by_global_norm(grads, self.global_clipnorm)
        return super()._clip_gradients(grads)

    def apply(self, grads, trainable_variables=None):
        """Applies `grads`; like `keras.optimizers.Adam.apply`."""
        if self.loss_scale_factor is not None:
            # Keras unscales with `g / loss_scale_factor`, which plain
            # IndexedSlices do not support.
            grads = [
                _DivisibleSlices(g.values, g.indices, g.dense_shape)
                if isinstance(g, tf.IndexedSlices)
                else g
                for g in grads
            ]
        return super().apply(grads, trainable_variables)


class _DivisibleSlices(tf.IndexedSlices):
    """`tf.IndexedSlices` that supports `/ scalar` (divides the values)."""

    def __truediv__(self, scale):
        values = self.values / tf.cast(scale, self.values.dtype)
        return tf.IndexedSlices(values, self.indices, self.dense_shape)


@keras.saving.register_keras_serializable(package="vtrain")
class SparseLossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """`LossScaleOptimizer` whose finiteness check keeps gradients sparse.

    Keras's version checks `isfinite` on the densified `tf.IndexedSlices`,
    an O(V * D) tensor per embedding table per step. This one checks only
    the slice values. Everything else is Keras's.

    >>> opt = SparseLossScaleOptimizer(LazyAdam())
    >>> grad = tf.IndexedSlices(  # a 1M-row table; only one row is checked
    ...     tf.constant([[1.0, float("nan")]]), tf.constant([3]),
    ...     dense_shape=tf.constant([1_000_000, 2]))
    >>> bool(opt.check_finite([grad]))
    False
    """

    def check_finite(self, grads):
        """Returns a scalar bool tensor: are all gradient values finite?"""
        values = [
            g.values if isinstance(g, tf.IndexedSlices) else g
            for g in grads
            if g is not None
        ]
        return tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in values])


_OPTIMIZERS = {
    "lazy_adam": LazyAdam,
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "adagrad": keras.optimizers.Adagrad,
    "rmsprop": keras.optimizers.RMSprop,
    "sgd": keras.optimizers.SGD,
}


def get(name_or_optimizer, learning_rate=None):
    """Returns an optimizer from a config name, or an instance unchanged.

    Args:
        name_or_optimizer: one of `"lazy_adam"`, `"adam"`, `"adamw"`,
            `"adagrad"`, `"rmsprop"`, `"sgd"` (case and `-`/`_` ignored), or a
            `keras.optimizers.Optimizer`, returned as is.
        learning_rate: float or schedule for a named optimizer; `None` keeps
            the class default. Must be `None` with an instance.

    >>> round(float(get("lazy_adam", 0.01).learning_rate), 6)
    0.01
    >>> get("SGD").__class__.__name__
    'SGD'
    """
    if isinstance(name_or_optimizer, keras.optimizers.Optimizer):
        if learning_rate is not None:
            raise ValueError(
                f"Received an optimizer instance ({name_or_optimizer.name}) and "
                f"learning_rate={learning_rate!r}. The instance already has its "
                "learning rate; pass learning_rate=None, or pass a name."
            )
        return name_or_optimizer
    if not isinstance(name_or_optimizer, str):
        raise TypeError(
            f"Expected an optimizer name or a keras.optimizers.Optimizer, "
            f"received {type(name_or_optimizer).__name__}: {name_or_optimizer!r}."
        )
    key = name_or_optimizer.strip().lower().replace("-", "_")
    if key not in _OPTIMIZERS:
        close = difflib.get_close_matches(key, _OPTIMIZERS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown optimizer name {name_or_optimizer!r}. Expected one of "
            f"{sorted(_OPTIMIZERS)}.{hint}"
        )
    kwargs = {} if learning_rate is None else {"learning_rate": learning_rate}
    return _OPTIMIZERS[key](**kwargs)


def _tf_variable(variable):
    # tf.gather on a keras.Variable reads the whole table first; on the
    # tf.Variable it is a ResourceGather of the rows.
    return variable.value if isinstance(variable, keras.Variable) else variable


def _rows(variable, indices):
    return tf.gather(_tf_variable(variable), indices)


def _sum_duplicates(grad):
    """Returns `(unique_indices, summed_values)` of an `IndexedSlices`."""
    if _graph_in_xla(tf.compat.v1.get_default_graph()):
        # XLA has no SparseSegmentSum.
        indices, positions = tf.unique(grad.indices)
        values = tf.math.unsorted_segment_sum(
            grad.values, positions, tf.shape(indices)[0]
        )
        return indices, values
    # Sorted ids make the segment ids increasing, so the sum is one
    # SparseSegmentSum (gather and sorted sum in one kernel): on CPU about
    # 2.5 times faster than UnsortedSegmentSum for a [12,800, 128] gradient.
    # The rows then come out in order, which also helps the gathers and
    # scatters of the moments that follow.
    order = tf.argsort(grad.indices, stable=True)
    indices, positions = tf.unique(tf.gather(grad.indices, order))
    values = tf.sparse.segment_sum(
        grad.values, order, positions, num_segments=tf.shape(indices)[0]
    )
    return indices, values


def _dedup(grad):
    indices, values = _sum_duplicates(grad)
    return tf.IndexedSlices(values, indices, grad.dense_shape)


def _scale(grad, factor):
    if isinstance(grad, tf.IndexedSlices):
        factor = tf.cast(factor, grad.values.dtype)
        return tf.IndexedSlices(grad.values * factor, grad.indices, grad.dense_shape)
    return grad * tf.cast(factor, grad.dtype)


def _clip_by_global_norm(grads, clip_norm):
    """Keras's `clip_by_global_norm`, reading only slice values."""
    squares = [
        tf.reduce_sum(tf.square(tf.cast(_values(g), "float32")))
        for g in grads
        if g is not None
    ]
    norm = tf.sqrt(tf.add_n(squares))
    scale_for_finite = clip_norm * tf.minimum(1.0 / norm, 1.0 / clip_norm)
    # `norm - norm` is NaN for a non-finite norm, as in Keras.
    scale = scale_for_finite + (norm - norm)
    return [_scale(g, scale) if g is not None else None for g in grads]


def _values(grad):
    return grad.values if isinstance(grad, tf.IndexedSlices) else grad
