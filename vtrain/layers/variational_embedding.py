"""A word embedding that learns which words the model can drop."""

import keras
import tensorflow as tf
from keras import ops

from vtrain.distribute import replica_seed
from vtrain.layers.base import (
    KL_K1,
    KL_K2,
    KL_K3,
    LOG_ALPHA_MAX,
    LOG_ALPHA_MIN,
    VariationalLayer,
    check_threshold,
)


@keras.saving.register_keras_serializable(package="vtrain")
class VariationalEmbedding(VariationalLayer):
    """Embedding with one multiplicative-noise variance per vocabulary row.

    Each row `mu_i` of `embeddings` is used as `mu_i * z` with a scalar
    `z ~ N(1, alpha_i)` drawn afresh for every looked-up token in training
    (group variational dropout over words, as in SparseVD-Voc, Chirkova et
    al. 2018). One `log_alpha_i` per row means one KL term per row:
    `regularizer()` sums `kl_log_uniform(log_alpha_i)` over the V rows, which
    is exactly the KL of this noise model (the reference implementation drew
    noise per dimension yet counted one KL term per row; here both are per
    row). At inference rows with `log_alpha >= threshold` are dropped: their
    vectors are exactly zero.

    The lookup is a `tf.gather` on the variable, so the gradient of
    `embeddings` is a `tf.IndexedSlices` over the looked-up rows, not a
    dense `[V, D]` tensor; pair it with `vtrain.optimizers.LazyAdam` for a
    step cost independent of V.

    Args:
        input_dim: vocabulary size V.
        output_dim: embedding size D.
        threshold: rows with `log_alpha >= threshold` are dropped at
            inference (3.0: noise variance alpha >= e^3 ~ 20 times mu^2).
        mask_zero: whether id 0 is padding (emits a Keras mask).
        embeddings_initializer: initializer of the `[V, D]` means.
        log_alpha_initializer: initializer of the `[V, 1]` log variances;
            default uniform in (0, 3), as in the reference code.
        seed: seed of the training noise.
        kl_refresh_steps: how often each row's KL and KL gradient are
            recomputed. 1 (default, exact): every row's at every step.
            k > 1 (the fast mode): at each training step the rows the
            batch looked up and a rotating 1/k of the others; every row
            still gets a KL gradient at every step, times the current KL
            weight, but a row absent from the batch may get one computed
            up to k - 1 steps before (such a row moves under the KL alone,
            by about the learning rate a step under Adam, whatever the
            gradient's size). The KL value (the logged `kl`) is stale by
            as much. It saves most of the transcendental functions over V
            rows, most of the layer's per-step cost at large V; the dense
            `V x 1` Adam step on `log_alpha` remains. See
            `refreshed_kl_sum` and docs/performance.md.
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:
    >>> import numpy as np
    >>> layer = VariationalEmbedding(100, 8, mask_zero=True)
    >>> tuple(layer(np.array([[1, 2, 0]])).shape)
    (1, 3, 8)
    >>> float(layer.sparsity())
    0.0
    """

    def __init__(
        self,
        input_dim,
        output_dim,
        threshold=3.0,
        mask_zero=False,
        embeddings_initializer="uniform",
        log_alpha_initializer=None,
        seed=None,
        kl_refresh_steps=1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if (
            not isinstance(kl_refresh_steps, int)
            or isinstance(kl_refresh_steps, bool)
            or kl_refresh_steps < 1
        ):
            raise ValueError(
                f"Invalid kl_refresh_steps for VariationalEmbedding: received "
                f"{kl_refresh_steps!r}. Expected a positive integer: 1 computes "
                "the KL gradient of every row at every step (exact, the "
                "default); k > 1 every k-th step, reusing it in between "
                "(e.g. kl_refresh_steps=8)."
            )
        self.kl_refresh_steps = kl_refresh_steps
        for name, value in (("input_dim", input_dim), ("output_dim", output_dim)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f"Invalid {name} for VariationalEmbedding: received "
                    f"{value!r}. Expected a positive integer (input_dim is the "
                    "vocabulary size, output_dim the vector size)."
                )
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.threshold = check_threshold(threshold)
        self.mask_zero = mask_zero
        self.supports_masking = mask_zero
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        if log_alpha_initializer is None:
            log_alpha_initializer = keras.initializers.RandomUniform(0.0, 3.0)
        self.log_alpha_initializer = keras.initializers.get(log_alpha_initializer)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape=None):
        # autocast=False: under mixed precision a cast of the whole table
        # would cost O(V * D) per step; the looked-up rows are cast instead.
        self.embeddings = self.add_weight(
            shape=(self.input_dim, self.output_dim),
            initializer=self.embeddings_initializer,
            name="embeddings",
            autocast=False,
        )
        self.log_alpha = self.add_weight(
            shape=(self.input_dim, 1),
            initializer=self.log_alpha_initializer,
            name="log_alpha",
            autocast=False,
        )
        if self.kl_refresh_steps > 1:
            # Each row's KL gradient (for a KL weight of 1) and each chunk's
            # KL as last computed, and the training steps taken (KL
            # gradients): see refreshed_kl_sum. Not weights: they follow
            # from log_alpha (filled here and after every weight load), and
            # the model's weights stay those of the exact mode, so that
            # checkpoints and pruned exports work for both. One value for
            # all replicas: they compute the same.
            with tf.init_scope():
                state = dict(
                    trainable=False,
                    synchronization=tf.VariableSynchronization.ON_WRITE,
                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
                )
                self.kl_steps = tf.Variable(tf.zeros((), "int64"), name="kl_steps", **state)
                self.kl_slope_cache = tf.Variable(
                    tf.zeros((self.input_dim, 1)), name="kl_slope_cache", **state
                )
                self.kl_value_cache = tf.Variable(
                    tf.zeros((self.kl_refresh_steps,)), name="kl_value_cache", **state
                )
            self.refresh_kl_caches()
        self.built = True

    def refresh_kl_caches(self):
        """Recomputes the KL caches of `kl_refresh_steps > 1` from `log_alpha`.

        Done at build and after every weight load; call it after assigning
        `log_alpha` yourself, or rows keep the KL gradient of the old
        values for up to `kl_refresh_steps - 1` steps. A no-op when
        `kl_refresh_steps == 1`.

        Example:
        >>> layer = VariationalEmbedding(4, 2, kl_refresh_steps=2)
        >>> layer.build()
        >>> _ = layer.log_alpha.assign(tf.zeros([4, 1]))
        >>> layer.refresh_kl_caches()
        >>> round(float(layer.regularizer()), 4)  # 4 x 0.43124
        1.725
        """
        if self.kl_refresh_steps == 1:
            return
        with tf.init_scope():
            init_refreshed_kl(
                self.log_alpha,
                self.kl_refresh_steps,
                self.kl_steps,
                self.kl_slope_cache,
                self.kl_value_cache,
            )

    def load_own_variables(self, store):
        """Loads the weights (Keras saving); recomputes the KL caches from them."""
        super().load_own_variables(store)
        self.refresh_kl_caches()

    def clipped_log_alpha(self):
        """`log_alpha` clipped to [-10, 10], shape `[V, 1]`."""
        return ops.clip(self.log_alpha, LOG_ALPHA_MIN, LOG_ALPHA_MAX)

    def call(self, inputs, training=False):
        ids = ops.cast(inputs, "int32")
        if self.kl_refresh_steps > 1:
            # regularizer() recomputes these rows' KL gradient (see there).
            self._batch_ids = ids
        mu = tf.gather(self.embeddings.value, ids)
        log_alpha = ops.clip(tf.gather(self.log_alpha.value, ids), LOG_ALPHA_MIN, LOG_ALPHA_MAX)
        if training:
            seed = replica_seed(self.seed_generator)
            noise = tf.random.stateless_normal(
                ops.shape(log_alpha), seed=seed, dtype=log_alpha.dtype
            )
            outputs = mu * (1.0 + ops.exp(0.5 * log_alpha) * noise)
        else:
            outputs = mu * ops.cast(log_alpha < self.threshold, mu.dtype)
        return ops.cast(outputs, self.compute_dtype)

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return ops.not_equal(inputs, 0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def regularizer(self):
        """KL of the noise posterior from the log-uniform prior, summed over rows.

        With `kl_refresh_steps=k > 1`, see `refreshed_kl_sum`: a rotating
        1/k of the rows, and the rows the last call looked up (in this
        graph), get their current KL gradient; the other rows, the one
        cached at most k - 1 steps before.

        Example:
        >>> layer = VariationalEmbedding(10, 4, log_alpha_initializer="zeros")
        >>> layer.build()
        >>> round(float(layer.regularizer()), 4)  # 10 rows x 0.43124
        4.3124
        """
        log_alpha = tf.convert_to_tensor(self.log_alpha.value)
        if self.kl_refresh_steps == 1:
            return clipped_kl_sum(log_alpha)
        batch_ids = getattr(self, "_batch_ids", None)
        return refreshed_kl_sum(
            log_alpha,
            self.kl_refresh_steps,
            self.kl_steps,
            self.kl_slope_cache,
            self.kl_value_cache,
            batch_ids=batch_ids if _usable_here(batch_ids) else None,
        )

    def keep_mask(self):
        """Boolean `[V]` tensor: True for rows kept at inference.

        Example:
        >>> layer = VariationalEmbedding(3, 2, log_alpha_initializer="ones")
        >>> layer.build()
        >>> ops.convert_to_numpy(layer.keep_mask()).tolist()
        [True, True, True]
        """
        return self.clipped_log_alpha()[:, 0] < self.threshold

    def sparsity(self):
        """Fraction of the vocabulary dropped at inference, a float32 scalar.

        Example:
        >>> layer = VariationalEmbedding(4, 2, log_alpha_initializer="ones")
        >>> layer.build()
        >>> float(layer.sparsity())
        0.0
        """
        return 1.0 - ops.mean(ops.cast(self.keep_mask(), "float32"))

    def get_config(self):
        config = super().get_config()
        config.update(
            input_dim=self.input_dim,
            output_dim=self.output_dim,
            threshold=self.threshold,
            mask_zero=self.mask_zero,
            embeddings_initializer=keras.initializers.serialize(self.embeddings_initializer),
            log_alpha_initializer=keras.initializers.serialize(self.log_alpha_initializer),
            seed=self.seed,
            kl_refresh_steps=self.kl_refresh_steps,
        )
        return config


def _usable_here(tensor):
    """Whether `tensor` (kept from the last call) belongs to the graph being built now."""
    if tensor is None:
        return False
    if tf.executing_eagerly():
        return not tf.is_symbolic_tensor(tensor)
    return tf.is_symbolic_tensor(tensor) and tensor.graph is tf.compat.v1.get_default_graph()


def kl_slope(log_alpha):
    """Derivative of `kl_log_uniform(clip(log_alpha, -10, 10))`, element-wise.

    0 outside the clip range, as for the clip: the gradient of
    `clipped_kl_sum` for an upstream gradient of 1.

    Example:
    >>> [round(float(g), 4) for g in kl_slope(tf.constant([-11.0, 0.0, 3.0]))]
    [0.0, -0.3591, -0.0254]
    """
    clipped = _clip(log_alpha)
    s = tf.sigmoid(-KL_K2 - KL_K3 * clipped)
    slope = (-KL_K1 * KL_K3) * (s * (1.0 - s)) - 0.5 * tf.sigmoid(-clipped)
    return tf.where(tf.equal(clipped, log_alpha), slope, 0.0)


def refreshed_kl_sum(log_alpha, refresh_steps, steps, slope_cache, value_cache, batch_ids=None):
    """`clipped_kl_sum(log_alpha)` with each row's part recomputed every `refresh_steps` steps.

    The V rows are cut into `refresh_steps` consecutive chunks of
    `ceil(V / refresh_steps)` rows (the last one shifted back to end at
    row V). At step `steps`, chunk `steps % refresh_steps` is recomputed:
    its rows' KL gradient (`kl_slope`) goes into `slope_cache` (`[V, 1]`)
    and its KL sum into `value_cache[chunk]`. The value returned is
    `sum(value_cache)`, the gradient `upstream * slope_cache`: every row's
    part is at most `refresh_steps - 1` steps old, and a step computes
    1 / `refresh_steps` of the transcendental functions. The rows
    `batch_ids` (any shape, repeats allowed: the ids the layer looked up)
    are recomputed too, so a row that gets a data gradient gets its
    current KL gradient with it; only rows absent from the batch, which
    move under the KL alone (by about the learning rate a step under
    Adam, whatever the gradient's size), use a cached one. Taking the
    gradient adds 1 to `steps` (evaluation, which takes none, does not
    advance it). The caches must start from `log_alpha`
    (`init_refreshed_kl`).

    Example: V = 2 rows, a refresh every 2 steps. At step 1 only row 1 is
    recomputed: row 0's gradient is still that of step 0, although it moved.

    >>> x = tf.Variable([[0.0], [0.0]])
    >>> steps, slope, value = init_refreshed_kl(x, 2)
    >>> grads = []
    >>> for _ in range(2):
    ...     with tf.GradientTape() as tape:
    ...         kl = refreshed_kl_sum(x, 2, steps, slope, value)
    ...     grads.append([round(float(g), 4) for g in tape.gradient(kl, x)[:, 0]])
    ...     _ = x.assign_add([[1.0], [1.0]])
    >>> grads, int(steps.numpy())
    ([[-0.3591, -0.3591], [-0.3591, -0.1651]], 2)
    """
    rows_total = log_alpha.shape[0]
    chunk = -(-rows_total // refresh_steps)

    @tf.custom_gradient
    def kl_sum(log_alpha):
        index = tf.cast(tf.math.floormod(steps, refresh_steps), "int32")
        first = index * chunk
        start = tf.minimum(first, rows_total - chunk)
        rows = tf.slice(log_alpha, tf.stack([start, 0]), [chunk, 1])
        # Rows before `first` belong to the previous chunk (the last chunk
        # overlaps it): their value is counted there.
        own = tf.range(chunk)[:, None] + start >= first
        values, slopes = _kl_and_slope(rows)
        chunk_value = tf.reduce_sum(tf.where(own, values, 0.0))
        positions = tf.range(start, start + chunk)
        if batch_ids is not None:
            # After the chunk: both are current values, in either order.
            looked_up = tf.reshape(batch_ids, [-1])
            positions = tf.concat([positions, looked_up], 0)
            slopes = tf.concat([slopes, kl_slope(tf.gather(log_alpha, looked_up))], 0)
        updates = [
            _tf_variable(slope_cache).scatter_update(tf.IndexedSlices(slopes, positions)),
            _tf_variable(value_cache).scatter_update(
                tf.IndexedSlices(chunk_value[None], index[None])
            ),
        ]
        with tf.control_dependencies(updates):
            value = tf.reduce_sum(_tf_variable(value_cache).read_value())

        def grad(upstream):
            with tf.control_dependencies([steps.assign_add(1)]):
                slope = _tf_variable(slope_cache).read_value()
                return tf.cast(upstream, slope.dtype) * slope

        return value, grad

    return kl_sum(log_alpha)


def _kl_and_slope(log_alpha):
    """`(kl_log_uniform_clipped(x), kl_slope(x))`, sharing the clip and the sigmoid."""
    clipped = _clip(log_alpha)
    s = tf.sigmoid(-KL_K2 - KL_K3 * clipped)
    values = KL_K1 * s + 0.5 * tf.math.log1p(tf.exp(-clipped))
    slope = (-KL_K1 * KL_K3) * (s * (1.0 - s)) - 0.5 * tf.sigmoid(-clipped)
    return values, tf.where(tf.equal(clipped, log_alpha), slope, 0.0)


def init_refreshed_kl(log_alpha, refresh_steps, steps=None, slope_cache=None, value_cache=None):
    """Fills (or creates, as `tf.Variable`s) the caches of `refreshed_kl_sum` from `log_alpha`.

    Returns `(steps, slope_cache, value_cache)`: 0, the KL gradient of
    every row, and each chunk's KL sum, so that every step, the first
    included, sees every row's KL.

    Example:
    >>> steps, slope, value = init_refreshed_kl(tf.zeros([3, 1]), 2)
    >>> int(steps.numpy()), [round(float(v), 5) for v in value.numpy()]
    (0, [0.86248, 0.43124])
    """
    log_alpha = tf.convert_to_tensor(log_alpha)
    rows_total = log_alpha.shape[0]
    chunk = -(-rows_total // refresh_steps)
    owner = tf.minimum(tf.range(rows_total) // chunk, refresh_steps - 1)
    values = tf.math.unsorted_segment_sum(
        kl_log_uniform_clipped(log_alpha)[:, 0], owner, refresh_steps
    )
    if steps is None:
        steps = tf.Variable(tf.zeros((), "int64"), trainable=False)
        slope_cache = tf.Variable(tf.zeros_like(log_alpha), trainable=False)
        value_cache = tf.Variable(tf.zeros([refresh_steps], log_alpha.dtype), trainable=False)
    steps.assign(tf.zeros((), "int64"))
    slope_cache.assign(kl_slope(log_alpha))
    value_cache.assign(values)
    return steps, slope_cache, value_cache


def _tf_variable(variable):
    # keras.Variable.value is the backend tf.Variable (scatter_update, and
    # reads without a copy of the whole table); tf.Variable as is.
    return variable.value if isinstance(variable, keras.Variable) else variable


def kl_log_uniform_clipped(log_alpha):
    """`kl_log_uniform(clip(log_alpha, -10, 10))` per row, as `clipped_kl_sum` sums it.

    Example:
    >>> [round(float(v), 5) for v in kl_log_uniform_clipped(tf.constant([-11.0, 3.0]))]
    [5.63578, 0.02542]
    """
    clipped = _clip(log_alpha)
    # softplus(-x) as TF's kernel computes it for |x| <= 10 (see clipped_kl_sum).
    return KL_K1 * tf.sigmoid(-KL_K2 - KL_K3 * clipped) + 0.5 * tf.math.log1p(tf.exp(-clipped))


@tf.custom_gradient
def clipped_kl_sum(log_alpha):
    """`sum(kl_log_uniform(clip(log_alpha, -10, 10)))`, gradient in closed form.

    The KL pulls on every row of `log_alpha` at every step, so its gradient
    is a pass over all V rows each step. Autodiff of the clipped KL takes
    about twenty element-wise ops over V (the clip's masks and selects, the
    sigmoid and softplus chains); this takes about ten, reusing the forward
    sigmoid. Same value, bit for bit; same gradient (0 outside the clip
    range, as for the clip) to float32 rounding.

    Example:
    >>> x = tf.constant([[-11.0], [0.0], [3.0]])
    >>> with tf.GradientTape() as tape:
    ...     tape.watch(x)
    ...     kl = clipped_kl_sum(x)
    >>> round(float(kl), 4)  # 5.63578 + 0.43124 + 0.02542
    6.0924
    >>> [round(float(g), 4) for g in tape.gradient(kl, x)[:, 0]]
    [0.0, -0.3591, -0.0254]
    """
    clipped = _clip(log_alpha)
    s = tf.sigmoid(-KL_K2 - KL_K3 * clipped)
    # softplus(-x) as TF's kernel computes it for |x| <= 10 (log1p(exp(-x))),
    # without its two range selects: the same bits, 40% less time.
    kl = tf.reduce_sum(KL_K1 * s + 0.5 * tf.math.log1p(tf.exp(-clipped)))

    def grad(upstream):
        # d/dx [k1 sigmoid(-k2 - k3 x) + 0.5 softplus(-x)], with the scalar
        # upstream folded into the constants to save two passes over V.
        a = upstream * (-KL_K1 * KL_K3)
        b = upstream * 0.5
        slope = a * (s * (1.0 - s)) - b * tf.sigmoid(-clipped)
        inside = tf.equal(clipped, log_alpha)
        return tf.where(inside, slope, 0.0)

    return kl, grad


def _clip(log_alpha):
    """`log_alpha` clipped to [-10, 10] in one kernel (tf.clip_by_value runs two passes)."""
    return tf.raw_ops.ClipByValue(
        t=log_alpha,
        clip_value_min=tf.constant(LOG_ALPHA_MIN, log_alpha.dtype),
        clip_value_max=tf.constant(LOG_ALPHA_MAX, log_alpha.dtype),
    )
