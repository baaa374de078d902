"""Callbacks: the epoch scheduler that `vtrain.Model.fit` adds itself."""

import keras
from keras import ops


class EpochScheduler(keras.callbacks.Callback):
    """Sets `model.epoch`, scheduled loss weights and the learning rate.

    At every epoch start it calls `model.set_epoch(epoch)` with `fit`'s
    epoch index (right after a resume too); at every epoch end it adds the
    values in force (`<term>_weight`, `learning_rate`) to the epoch logs, so
    they reach the progress bar, `History` and TensorBoard. `vtrain.Model.fit`
    puts one first in the callback list when the user did not.

    Example:
    >>> import numpy as np, keras, vtrain
    >>> class M(vtrain.Model):
    ...     def __init__(self, **kwargs):
    ...         super().__init__(**kwargs)
    ...         self.dense = keras.layers.Dense(1)
    ...     def compute_losses(self, data, training):
    ...         return {"square": keras.ops.mean(self.dense(data) ** 2)}
    >>> model = M(learning_rate=lambda epoch: 0.1 / (epoch + 1))
    >>> model.compile(optimizer="sgd")
    >>> logs = model.fit(np.ones((4, 2)), epochs=2, verbose=0,
    ...                  callbacks=[EpochScheduler()]).history
    >>> [round(v, 3) for v in logs["learning_rate"]]
    [0.1, 0.05]
    """

    def on_epoch_begin(self, epoch, logs=None):
        self._values = self.model.set_epoch(epoch)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        logs.update(getattr(self, "_values", {}))
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and "learning_rate" not in logs:
            logs["learning_rate"] = float(ops.convert_to_numpy(optimizer.learning_rate))
