"""Optimizers: a row-wise ("lazy") Adam for sparse gradients, per-variable
learning-rate multipliers, and `get`.

On the TensorFlow backend a `tf.gather` lookup into an embedding table gives a
`tf.IndexedSlices` gradient. Keras's `Adam` turns it into a dense update, so a
step costs O(V * D) however few rows the batch touched. `LazyAdam` updates only
the touched rows, so the cost follows the batch, not the vocabulary;
`is_row_wise` tells which optimizers keep such a gradient sparse (and
`vtrain.Model` warns, with `DensifiedGradientWarning`, when one does not).

`LearningRateMultipliers` gives chosen variables a learning rate a constant
factor larger (e.g. `log_alpha` of a variational embedding): `LazyAdam` and
`SGD` include it, and it mixes into any Keras optimizer.
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


class DensifiedGradientWarning(UserWarning):
    """A sparse gradient is about to be applied as a dense update.

    Warned once by `vtrain.Model` at the first step (when the step is traced)
    if a trainable variable gets a `tf.IndexedSlices` gradient and the
    optimizer is not row-wise (`is_row_wise`). Silence it, having read it,
    with `warnings.simplefilter("ignore", DensifiedGradientWarning)`.

    >>> issubclass(DensifiedGradientWarning, UserWarning)
    True
    """


class LearningRateMultipliers:
    """Mixin: per-variable learning-rate multipliers for a Keras optimizer.

    `learning_rate_multipliers={key: factor}` updates every variable that
    `key` matches exactly as the optimizer would with a learning rate
    `factor` times its own (the schedule, `vtrain.Model(learning_rate=...)`
    and `ReduceLROnPlateau` included: the factor multiplies whatever
    learning rate is in force). Other variables use the learning rate as is.
    Applied inside `update_step`, per variable, so it is exact for dense and
    row-wise (`tf.IndexedSlices`) updates, on one replica or under
    `tf.distribute`, and it is saved in `get_config()`.

    **Matching rule.** A key matches a variable when it equals the
    variable's `path` or is a suffix of it made of whole `/`-separated
    parts: `"log_alpha"` matches `"model/embedding/log_alpha"` and every
    other variable named `log_alpha`; `"embedding/log_alpha"` matches only
    that layer's; `"alpha"` matches neither. At `build` (the first step, or
    `optimizer.build(model.trainable_variables)`), a key that matches no
    variable, or a variable matched by two keys with different factors, is
    a `ValueError` naming the variables: a typo fails instead of silently
    training at the base rate.

    `LazyAdam` and `SGD` include it. For another optimizer, put the mixin
    first: `class MyRMSprop(LearningRateMultipliers, keras.optimizers.RMSprop)`
    (and register it to save it). Keras applies `weight_decay` with the base
    learning rate in those optimizers; `LazyAdam` decays with the multiplied
    one, as Adam with the larger learning rate would.

    Example: the same gradient, `bias` moves 5 times as far.

    >>> kernel, bias = keras.Variable([1.0], name="kernel"), keras.Variable([1.0], name="bias")
    >>> opt = SGD(0.1, learning_rate_multipliers={"bias": 5.0})
    >>> opt.apply([tf.constant([1.0]), tf.constant([1.0])], [kernel, bias])
    >>> round(float(kernel.numpy()[0]), 6), round(float(bias.numpy()[0]), 6)
    (0.9, 0.5)
    >>> SGD(learning_rate_multipliers={"bais": 5.0}).build([kernel, bias])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: learning_rate_multipliers key 'bais' matches no variable. ...
    """

    def __init__(self, *args, learning_rate_multipliers=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.learning_rate_multipliers = _checked_multipliers(learning_rate_multipliers)
        self._multiplier_by_index = None

    def build(self, variables):
        """Builds the optimizer; resolves the multiplier keys to `variables`."""
        if self.built:
            return
        super().build(variables)
        self._multiplier_by_index = _resolve_multipliers(self.learning_rate_multipliers, variables)

    def learning_rate_multiplier(self, variable):
        """The factor on the learning rate for `variable` (1.0 if no key matches).

        Known once the optimizer is built.

        >>> w = keras.Variable([0.0], name="log_alpha")
        >>> opt = SGD(learning_rate_multipliers={"log_alpha": 5.0})
        >>> opt.build([w])
        >>> opt.learning_rate_multiplier(w)
        5.0
        """
        if not self.built:
            raise ValueError(
                f"{type(self).__name__}.learning_rate_multiplier() was called "
                "before the optimizer was built, so the keys are not resolved "
                "yet. Call optimizer.build(model.trainable_variables) (or train "
                "one step) first."
            )
        if not self._multiplier_by_index:
            return 1.0
        return self._multiplier_by_index[self._get_variable_index(variable)]

    def update_step(self, gradient, variable, learning_rate):
        """The wrapped optimizer's step, with `learning_rate * factor`."""
        if self._multiplier_by_index:
            factor = self._multiplier_by_index[self._get_variable_index(variable)]
            if factor != 1.0:
                learning_rate = learning_rate * tf.cast(factor, learning_rate.dtype)
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config["learning_rate_multipliers"] = dict(self.learning_rate_multipliers) or None
        return config


def _checked_multipliers(multipliers):
    if multipliers is None:
        return {}
    if not isinstance(multipliers, dict):
        raise TypeError(
            "learning_rate_multipliers must be a dict {variable name or path "
            f"suffix: factor}}, e.g. {{'log_alpha': 5.0}}; received "
            f"{type(multipliers).__name__}: {multipliers!r}."
        )
    checked = {}
    for key, factor in multipliers.items():
        if not isinstance(key, str) or not key.strip("/") or key != key.strip("/"):
            raise ValueError(
                f"Invalid learning_rate_multipliers key {key!r}: expected a "
                "variable name or a path suffix such as 'log_alpha' or "
                "'embedding/log_alpha' (no leading or trailing '/')."
            )
        if (
            isinstance(factor, bool)
            or not isinstance(factor, (int, float))
            or not (0 < factor < float("inf"))
        ):
            raise ValueError(
                f"Invalid learning_rate_multipliers[{key!r}]: received {factor!r}; "
                "expected a positive finite number (the factor on the learning "
                "rate; 1.0 leaves it unchanged). To freeze a variable, make it "
                "non-trainable instead."
            )
        checked[key] = float(factor)
    return checked


def _matches(key, path):
    return path == key or path.endswith("/" + key)


def _resolve_multipliers(multipliers, variables):
    """`[factor for each of variables]`; raises on keys that match nothing."""
    if not multipliers:
        return None
    paths = [variable.path for variable in variables]
    factors, used = [], set()
    for path in paths:
        keys = [key for key in multipliers if _matches(key, path)]
        values = sorted({multipliers[key] for key in keys})
        if len(values) > 1:
            raise ValueError(
                f"learning_rate_multipliers gives the variable {path!r} two "
                f"factors: {', '.join(f'{k!r}: {multipliers[k]}' for k in keys)}. "
                "Expected at most one factor per variable; use a longer path "
                "suffix (e.g. 'layer/name') for the one that differs."
            )
        used.update(keys)
        factors.append(values[0] if values else 1.0)
    unknown = [key for key in multipliers if key not in used]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(
            key, sorted({p.rsplit("/", 1)[-1] for p in paths} | set(paths)), n=1
        )
        hint = f" Did you mean {close[0]!r}?" if close else ""
        shown = ", ".join(repr(p) for p in paths[:12]) + (", ..." if len(paths) > 12 else "")
        raise ValueError(
            f"learning_rate_multipliers key {key!r} matches no variable. "
            "Expected a variable name or a '/'-separated path suffix of one of "
            f"the {len(paths)} trained variables: {shown}.{hint} Fix the key, "
            "or remove it."
        )
    return factors


class _RowWiseAdam(keras.optimizers.Adam):
    """`LazyAdam` without the multipliers (see `LazyAdam`)."""

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


@keras.saving.register_keras_serializable(package="vtrain")
class LazyAdam(LearningRateMultipliers, _RowWiseAdam):
    """Adam that updates only the rows present in a `tf.IndexedSlices` gradient.

    Takes exactly the arguments of `keras.optimizers.Adam` (including
    `amsgrad`), plus `learning_rate_multipliers` (`{variable name or path
    suffix: factor}`, see `LearningRateMultipliers`): those variables get
    exactly Adam with `factor` times the learning rate, on both paths below.
    Dense gradients get Keras's Adam formulas, computed in one pass by
    TensorFlow's fused `ApplyAdam` kernel (Keras's own step with `amsgrad`);
    the result equals Keras's to float32 rounding. For a
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


@keras.saving.register_keras_serializable(package="vtrain")
class SGD(LearningRateMultipliers, keras.optimizers.SGD):
    """`keras.optimizers.SGD` with `learning_rate_multipliers`.

    Same arguments as Keras's, plus `learning_rate_multipliers` (see
    `LearningRateMultipliers`). Without momentum, SGD applies a
    `tf.IndexedSlices` gradient row by row; with momentum, Keras densifies it.

    >>> w = keras.Variable([1.0], name="log_alpha")
    >>> SGD(0.1, learning_rate_multipliers={"log_alpha": 5.0}).apply([tf.constant([1.0])], [w])
    >>> round(float(w.numpy()[0]), 6)
    0.5
    """


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
            g.values if isinstance(g, tf.IndexedSlices) else g for g in grads if g is not None
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
# The classes `get` returns when given learning_rate_multipliers.
_WITH_MULTIPLIERS = {"lazy_adam": LazyAdam, "sgd": SGD}


def get(name_or_optimizer, learning_rate=None, learning_rate_multipliers=None):
    """Returns an optimizer from a config name, or an instance unchanged.

    Args:
        name_or_optimizer: one of `"lazy_adam"`, `"adam"`, `"adamw"`,
            `"adagrad"`, `"rmsprop"`, `"sgd"` (case and `-`/`_` ignored), or a
            `keras.optimizers.Optimizer`, returned as is.
        learning_rate: float or schedule for a named optimizer; `None` keeps
            the class default. Must be `None` with an instance.
        learning_rate_multipliers: `None`, or `{variable name or path
            suffix: factor}` (see `LearningRateMultipliers`), for
            `"lazy_adam"` (`LazyAdam`) and `"sgd"` (`vtrain.optimizers.SGD`).
            An empty dict is the same as `None`. Must be `None` with an
            instance.

    >>> round(float(get("lazy_adam", 0.01).learning_rate), 6)
    0.01
    >>> get("SGD").__class__.__name__
    'SGD'
    >>> get("lazy_adam", 1e-3, learning_rate_multipliers={"log_alpha": 5.0}).learning_rate_multipliers
    {'log_alpha': 5.0}
    """
    if isinstance(name_or_optimizer, keras.optimizers.Optimizer):
        for argument, value in (
            ("learning_rate", learning_rate),
            ("learning_rate_multipliers", learning_rate_multipliers),
        ):
            if value is not None:
                raise ValueError(
                    f"Received an optimizer instance ({name_or_optimizer.name}) and "
                    f"{argument}={value!r}. The instance already has its "
                    f"settings; pass {argument}=None (or set it when creating "
                    "the instance), or pass a name."
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
    if not learning_rate_multipliers:
        return _OPTIMIZERS[key](**kwargs)
    if key not in _WITH_MULTIPLIERS:
        raise ValueError(
            f"Optimizer {name_or_optimizer!r} received learning_rate_multipliers="
            f"{learning_rate_multipliers!r}, but only {sorted(_WITH_MULTIPLIERS)} "
            "take them here. Use 'lazy_adam' (the same as Adam on dense "
            "gradients), or mix vtrain.optimizers.LearningRateMultipliers into "
            "your optimizer class and pass an instance."
        )
    return _WITH_MULTIPLIERS[key](learning_rate_multipliers=learning_rate_multipliers, **kwargs)


def is_row_wise(optimizer):
    """True if `optimizer` applies a `tf.IndexedSlices` gradient row by row.

    Row-wise: `LazyAdam` and SGD without momentum or weight decay (Keras's
    or `vtrain.optimizers.SGD`), also inside `SparseLossScaleOptimizer`.
    Everything else turns the gradient of an embedding table into a dense
    update of the whole table every step: Keras's `Adam`, `AdamW`,
    `RMSprop`, `Adagrad`, SGD with momentum, Keras's `LossScaleOptimizer`
    (its finiteness check), and any optimizer with `use_ema` or
    `gradient_accumulation_steps` (dense per-variable state).

    >>> is_row_wise(LazyAdam()), is_row_wise(keras.optimizers.Adam())
    (True, False)
    >>> is_row_wise(keras.optimizers.SGD(0.1)), is_row_wise(keras.optimizers.SGD(0.1, momentum=0.9))
    (True, False)
    """
    if isinstance(optimizer, SparseLossScaleOptimizer):
        return is_row_wise(optimizer.inner_optimizer)
    if getattr(optimizer, "use_ema", False) or getattr(
        optimizer, "gradient_accumulation_steps", None
    ):
        return False
    if isinstance(optimizer, LazyAdam):
        return True
    if type(optimizer) in (keras.optimizers.SGD, SGD):
        return not optimizer.momentum and not optimizer.weight_decay
    return False


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
        values = tf.math.unsorted_segment_sum(grad.values, positions, tf.shape(indices)[0])
        return indices, values
    # Sorted ids make the segment ids increasing, so the sum is one
    # SparseSegmentSum (gather and sorted sum in one kernel): on CPU about
    # 2.5 times faster than UnsortedSegmentSum for a [12,800, 128] gradient.
    # The rows then come out in order, which also helps the gathers and
    # scatters of the moments that follow.
    order = tf.argsort(grad.indices, stable=True)
    indices, positions = tf.unique(tf.gather(grad.indices, order))
    values = tf.sparse.segment_sum(grad.values, order, positions, num_segments=tf.shape(indices)[0])
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
        tf.reduce_sum(tf.square(tf.cast(_values(g), "float32"))) for g in grads if g is not None
    ]
    norm = tf.sqrt(tf.add_n(squares))
    scale_for_finite = clip_norm * tf.minimum(1.0 / norm, 1.0 / clip_norm)
    # `norm - norm` is NaN for a non-finite norm, as in Keras.
    scale = scale_for_finite + (norm - norm)
    return [_scale(g, scale) if g is not None else None for g in grads]


def _values(grad):
    return grad.values if isinstance(grad, tf.IndexedSlices) else grad
