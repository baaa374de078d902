"""What makes a layer "variational" to `vtrain.VariationalModel`."""

import keras
from keras import ops

# Molchanov et al. 2017, "Variational Dropout Sparsifies Deep Neural
# Networks", eq. 14: a fit of -KL(q || log-uniform prior) in log_alpha.
KL_K1 = 0.63576
KL_K2 = 1.8732
KL_K3 = 1.48695
LOG_ALPHA_MIN = -10.0
LOG_ALPHA_MAX = 10.0


def kl_log_uniform(log_alpha):
    """Approximate KL(N(w, alpha w^2) || log-uniform) per element.

    The KL of a multiplicative Gaussian posterior from the (improper)
    log-uniform prior depends on `log_alpha` only; this is the
    Molchanov et al. (2017) approximation, accurate to about 0.01 nats.

    Args:
        log_alpha: tensor of log noise variances (already clipped).

    Returns:
        A tensor of the same shape: the KL of each element, in nats.

    Example:
    >>> import numpy as np
    >>> kl = kl_log_uniform(np.array([-10.0, 0.0, 3.0, 8.0], "float32"))
    >>> [round(float(v), 5) for v in ops.convert_to_numpy(kl)]
    [5.63578, 0.43124, 0.02542, 0.00017]
    """
    log_alpha = ops.convert_to_tensor(log_alpha)
    # -(k1 sigmoid(k2 + k3 la) - 0.5 softplus(-la) - k1), rearranged into
    # two positive terms: the written form loses ~1e-6 relative to float32
    # cancellation at large log_alpha, where the KL is small.
    return KL_K1 * ops.sigmoid(-KL_K2 - KL_K3 * log_alpha) + 0.5 * ops.softplus(-log_alpha)


def check_threshold(threshold):
    """Return `threshold` as a float, or raise a ValueError that says why.

    Example:
    >>> check_threshold(3)
    3.0
    """
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        value = float("nan")
    if not LOG_ALPHA_MIN <= value <= LOG_ALPHA_MAX:
        raise ValueError(
            f"Invalid threshold: received {threshold!r}. Expected a finite "
            f"number in [{LOG_ALPHA_MIN}, {LOG_ALPHA_MAX}] (log_alpha is "
            "clipped to that range; 3.0, i.e. alpha ~ 20, is the usual "
            "choice). Pass e.g. threshold=3.0."
        )
    return value


class VariationalLayer(keras.layers.Layer):
    """Base class of layers whose KL `VariationalModel` adds to the loss.

    A subclass implements `regularizer()`, returning its KL divergence as a
    float32 scalar tensor (summed over its weights, in nats). It is called
    once per step, on the whole layer, so it must not depend on the batch.

    Example:
    >>> class Scale(VariationalLayer):
    ...     def build(self, input_shape):
    ...         self.log_alpha = self.add_weight(shape=(), name="log_alpha")
    ...     def call(self, x):
    ...         return x
    ...     def regularizer(self):
    ...         return ops.sum(kl_log_uniform(self.log_alpha))
    >>> layer = Scale()
    >>> layer.build(None)
    >>> float(layer.regularizer()) > 0
    True
    """

    def regularizer(self):
        """The KL term of this layer: a float32 scalar tensor."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement regularizer(), returning "
            "its KL divergence as a scalar tensor."
        )
