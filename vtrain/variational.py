"""`VariationalModel`: cross-entropy plus a scheduled KL of variational layers."""

import logging

import keras
from keras import ops

from vtrain import _keras_compat
from vtrain.distribute import example_mean
from vtrain.layers.base import VariationalLayer
from vtrain.model import Model

TASK_LOSSES = (
    "sparse_categorical_crossentropy",
    "categorical_crossentropy",
    "binary_crossentropy",
)


@keras.saving.register_keras_serializable(package="vtrain")
class VariationalModel(Model):
    """A model trained on `cross_entropy + weight_decay(epoch) * kl`.

    `kl` is the sum of `regularizer()` over every
    `vtrain.layers.VariationalLayer` inside the model, found automatically
    (nested layers included). `cross_entropy` is computed from the model's
    logits and the batch's labels, with sample weights if the batch has them:

    - `"sparse_categorical_crossentropy"`: integer class labels, softmax;
    - `"categorical_crossentropy"`: one-hot labels, softmax;
    - `"binary_crossentropy"`: multi-hot labels (multi-label tagging), one
      sigmoid per label, **summed** over labels so that each example's term
      is its negative log-likelihood (the scale a KL weight of 1/N assumes).

    Each is averaged over the batch (`sum(sample_weight * loss) / batch`, as
    Keras does), over the global batch under `tf.distribute`
    (`vtrain.distribute.example_mean`). Use it as a subclass with a `call()`, or functionally:
    `VariationalModel(inputs, outputs, weight_decay=...)`.

    Args:
        weight_decay: the KL weight: a float or a schedule `epoch -> float`
            (e.g. `vtrain.schedules.vocabulary_ramp(...).weight_decay`);
            about 1 / (number of training examples) gives the ELBO.
        task_loss: one of the names above.
        **kwargs: `learning_rate`, extra `loss_weights`, and `keras.Model`
            arguments.

    Example:
    >>> import numpy as np, keras, vtrain
    >>> ids = keras.Input((5,), dtype="int32")
    >>> h = vtrain.layers.VariationalEmbedding(50, 8)(ids)
    >>> logits = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling1D()(h))
    >>> model = vtrain.VariationalModel(ids, logits, weight_decay=1e-3)
    >>> model.compile(optimizer=vtrain.optimizers.LazyAdam())  # row-wise updates
    >>> x, y = np.random.randint(0, 50, (16, 5)), np.random.randint(0, 3, 16)
    >>> sorted(model.fit(x, y, epochs=1, verbose=0).history)
    ['cross_entropy', 'kl', 'kl_weight', 'learning_rate', 'loss']
    """

    def __init__(
        self,
        *args,
        weight_decay=1.0,
        task_loss="sparse_categorical_crossentropy",
        loss_weights=None,
        **kwargs,
    ):
        if task_loss not in TASK_LOSSES:
            raise ValueError(
                f"Invalid task_loss: received {task_loss!r}. Expected one of "
                f"{list(TASK_LOSSES)} (binary_crossentropy for multi-label "
                "targets)."
            )
        loss_weights = dict(loss_weights or {})
        if "kl" in loss_weights:
            raise ValueError(
                "VariationalModel received a 'kl' entry in loss_weights; the KL "
                "weight is weight_decay=. Pass weight_decay=... instead."
            )
        loss_weights["kl"] = weight_decay
        super().__init__(*args, loss_weights=loss_weights, **kwargs)
        self.task_loss = task_loss

    def compute_losses(self, data, training):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if y is None:
            raise ValueError(
                "VariationalModel needs labels: fit/evaluate received batches "
                "with no y. Pass (x, y) or (x, y, sample_weight)."
            )
        logits = self(x, training=training)
        return {
            "cross_entropy": self.cross_entropy(y, logits, sample_weight),
            "kl": self.kl_divergence(),
        }

    def cross_entropy(self, y, logits, sample_weight=None):
        """Mean per-example cross-entropy of `logits` against `y`.

        Example:
        >>> import numpy as np, vtrain
        >>> m = vtrain.VariationalModel(task_loss="binary_crossentropy")
        >>> float(m.cross_entropy(np.array([[1.0, 0.0]]), np.zeros((1, 2))))
        1.3862943649291992
        """
        logits = ops.cast(logits, "float32")
        if self.task_loss == "binary_crossentropy":
            y = ops.cast(y, "float32")
            per_example = ops.sum(ops.binary_crossentropy(y, logits, from_logits=True), axis=-1)
        elif self.task_loss == "categorical_crossentropy":
            per_example = ops.categorical_crossentropy(
                ops.cast(y, "float32"), logits, from_logits=True
            )
        else:
            per_example = ops.sparse_categorical_crossentropy(
                ops.reshape(ops.cast(y, "int32"), (-1,)), logits, from_logits=True
            )
        # Not ops.mean: on N replicas the last batch is split unevenly.
        return example_mean(per_example, sample_weight)

    def variational_layers(self):
        """Every `VariationalLayer` in the model, nested ones included.

        Example:
        >>> import keras, vtrain
        >>> ids = keras.Input((4,), dtype="int32")
        >>> out = vtrain.layers.VariationalEmbedding(10, 2, name="words")(ids)
        >>> [l.name for l in vtrain.VariationalModel(ids, out).variational_layers()]
        ['words']
        """
        return [
            layer for layer in _keras_compat.all_layers(self) if isinstance(layer, VariationalLayer)
        ]

    def kl_divergence(self):
        """Sum of `regularizer()` over the variational layers (float32).

        Example:
        >>> import vtrain
        >>> float(vtrain.VariationalModel().kl_divergence())
        0.0
        """
        layers = self.variational_layers()
        if not layers:
            if not getattr(self, "_warned_no_kl", False):
                logging.warning(
                    "%s has no variational layer: its kl term is 0. Use a "
                    "vtrain.layers.VariationalEmbedding (or another "
                    "VariationalLayer) to learn what to drop.",
                    self.name,
                )
                self._warned_no_kl = True
            return ops.zeros((), "float32")
        return sum(ops.cast(layer.regularizer(), "float32") for layer in layers)

    def get_config(self):
        config = super().get_config()
        loss_weights = dict(config.pop("loss_weights"))
        config.update(
            weight_decay=loss_weights.pop("kl"),
            loss_weights=loss_weights,
            task_loss=self.task_loss,
        )
        return config
