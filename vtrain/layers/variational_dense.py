"""A dense layer that learns which of its weights it can drop."""

import keras
from keras import ops

from vtrain.layers.base import (
    LOG_ALPHA_MAX,
    LOG_ALPHA_MIN,
    VariationalLayer,
    check_threshold,
    kl_log_uniform,
)

# Keeps log(theta^2) finite when a weight reaches exactly zero.
_EPSILON = 1e-8


@keras.saving.register_keras_serializable(package="vtrain")
class VariationalDense(VariationalLayer):
    """Dense layer with Sparse Variational Dropout (Molchanov et al. 2017).

    Every kernel weight `w_ij ~ N(theta_ij, alpha_ij * theta_ij^2)` has its
    own noise variance, parameterised by `log_sigma2` (not `log_alpha`: the
    variance of a weight near zero then stays small and its gradient stays
    low-variance, the "additive reparameterisation" of the paper):
    `log_alpha = clip(log_sigma2 - log(theta^2 + 1e-8), -10, 10)`.

    Training uses the local reparameterisation trick: instead of sampling a
    kernel per batch, each pre-activation is sampled per example from
    `N(x @ theta, x^2 @ (alpha * theta^2))`, which is the exact distribution
    of `x @ w` for independent Gaussian weights and has a lower-variance
    gradient. At inference a weight with `log_alpha >= threshold` is dropped
    (set to zero) and the layer is deterministic:
    `activation(x @ (theta * keep_mask) + bias)`. The bias is not noisy.

    `regularizer()` is `sum(kl_log_uniform(log_alpha))` over the kernel: the
    KL of this per-weight noise model from the log-uniform prior, one term
    per weight, as the noise is per weight.

    Args:
        units: number of output units.
        activation: activation name or callable (None: linear).
        use_bias: whether to add a (deterministic) bias.
        threshold: weights with `log_alpha >= threshold` are dropped at
            inference (3.0: alpha ~ 20, the paper's choice).
        kernel_initializer: initializer of `kernel` (theta).
        bias_initializer: initializer of `bias`.
        log_sigma2_initializer: initializer of `log_sigma2`; default a
            constant -10 as in the paper's code, so training starts almost
            noiseless (log_alpha about -5 for glorot-sized weights).
        seed: seed of the training noise.
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:
    >>> import numpy as np
    >>> layer = VariationalDense(4, activation="relu")
    >>> tuple(layer(np.ones((2, 3), "float32")).shape)
    (2, 4)
    >>> float(layer.sparsity())  # log_alpha starts near -5: nothing dropped
    0.0
    >>> tuple(layer.regularizer().shape)  # the KL, summed over the 3 x 4 weights
    ()
    """

    def __init__(
        self,
        units,
        activation=None,
        use_bias=True,
        threshold=3.0,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        log_sigma2_initializer=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(units, int) or isinstance(units, bool) or units < 1:
            raise ValueError(
                f"Invalid units for VariationalDense: received {units!r}. "
                "Expected a positive integer (the number of output units), "
                "e.g. VariationalDense(256)."
            )
        self.units = units
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.threshold = check_threshold(threshold)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        if log_sigma2_initializer is None:
            log_sigma2_initializer = keras.initializers.Constant(-10.0)
        self.log_sigma2_initializer = keras.initializers.get(log_sigma2_initializer)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.input_spec = keras.layers.InputSpec(min_ndim=2)
        self.supports_masking = True

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                f"VariationalDense received an input of shape {input_shape} "
                "whose last dimension is unknown. Expected a known number of "
                "input features; give the Input a full feature shape."
            )
        # autocast=False: the variance path (exp, squares) runs in float32
        # under mixed precision too; only the output is cast.
        self.kernel = self.add_weight(
            shape=(input_dim, self.units),
            initializer=self.kernel_initializer,
            name="kernel",
            autocast=False,
        )
        self.log_sigma2 = self.add_weight(
            shape=(input_dim, self.units),
            initializer=self.log_sigma2_initializer,
            name="log_sigma2",
            autocast=False,
        )
        self.bias = (
            self.add_weight(
                shape=(self.units,),
                initializer=self.bias_initializer,
                name="bias",
                autocast=False,
            )
            if self.use_bias
            else None
        )
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: input_dim})
        self.built = True

    def log_alpha(self):
        """`log_sigma2 - log(kernel^2 + 1e-8)` clipped to [-10, 10], `[in, units]`.

        Example:
        >>> layer = VariationalDense(2, kernel_initializer="ones")
        >>> layer.build((None, 3))
        >>> ops.convert_to_numpy(layer.log_alpha())[0].tolist()
        [-10.0, -10.0]
        """
        log_alpha = self.log_sigma2 - ops.log(ops.square(self.kernel) + _EPSILON)
        return ops.clip(log_alpha, LOG_ALPHA_MIN, LOG_ALPHA_MAX)

    def call(self, inputs, training=False):
        x = ops.cast(inputs, "float32")
        if training:
            mean = ops.matmul(x, self.kernel)
            weight_variance = ops.exp(self.log_alpha()) * ops.square(self.kernel)
            variance = ops.matmul(ops.square(x), weight_variance)
            noise = keras.random.normal(ops.shape(mean), dtype="float32", seed=self.seed_generator)
            outputs = mean + ops.sqrt(variance + _EPSILON) * noise
        else:
            outputs = ops.matmul(x, self.masked_kernel())
        if self.use_bias:
            outputs = outputs + self.bias
        if self.activation is not None:
            outputs = self.activation(outputs)
        return ops.cast(outputs, self.compute_dtype)

    def masked_kernel(self):
        """The kernel used at inference: `kernel * keep_mask()`.

        Example:
        >>> layer = VariationalDense(2, kernel_initializer="ones")
        >>> layer.build((None, 2))
        >>> _ = layer.log_sigma2.assign([[0.0, 5.0], [5.0, 0.0]])  # log_alpha 0 or 5
        >>> ops.convert_to_numpy(layer.masked_kernel()).tolist()
        [[1.0, 0.0], [0.0, 1.0]]
        """
        return self.kernel * ops.cast(self.keep_mask(), self.kernel.dtype)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def regularizer(self):
        """KL of the weight posterior from the log-uniform prior, summed over weights.

        Example:
        >>> layer = VariationalDense(5, kernel_initializer="ones",
        ...                          log_sigma2_initializer="zeros")
        >>> layer.build((None, 2))
        >>> round(float(layer.regularizer()), 4)  # 10 weights x 0.43124
        4.3124
        """
        return ops.sum(kl_log_uniform(self.log_alpha()))

    def keep_mask(self):
        """Boolean `[in, units]` tensor: True for weights kept at inference.

        Example:
        >>> layer = VariationalDense(2, kernel_initializer="ones")
        >>> layer.build((None, 2))
        >>> _ = layer.log_sigma2.assign([[0.0, 5.0], [0.0, 0.0]])
        >>> ops.convert_to_numpy(layer.keep_mask()).tolist()
        [[True, False], [True, True]]
        """
        return self.log_alpha() < self.threshold

    def sparsity(self):
        """Fraction of kernel weights dropped at inference, a float32 scalar.

        Example:
        >>> layer = VariationalDense(2, kernel_initializer="ones")
        >>> layer.build((None, 2))
        >>> _ = layer.log_sigma2.assign([[0.0, 5.0], [5.0, 5.0]])
        >>> float(layer.sparsity())
        0.75
        """
        return 1.0 - ops.mean(ops.cast(self.keep_mask(), "float32"))

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            activation=keras.activations.serialize(self.activation),
            use_bias=self.use_bias,
            threshold=self.threshold,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            log_sigma2_initializer=keras.initializers.serialize(self.log_sigma2_initializer),
            seed=self.seed,
        )
        return config
