"""`GatherEmbedding`: `keras.layers.Embedding` with a sparse gradient."""

import keras
import numpy as np  # noqa: F401  (the docstring example uses it)
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="vtrain")
class GatherEmbedding(keras.layers.Embedding):
    """`keras.layers.Embedding` whose gradient is sparse (`tf.IndexedSlices`).

    Keras's lookup (`ops.take`) gives a dense `[V, D]` gradient on the
    TensorFlow backend, so every step costs O(V * D) whatever the batch;
    `tf.gather` on the variable gives the looked-up rows only, which
    `vtrain.optimizers.LazyAdam` updates row by row. Same arguments, weights
    and outputs as `keras.layers.Embedding`.

    Example:
    >>> layer = GatherEmbedding(10, 4)
    >>> tuple(layer(np.array([[1, 2]])).shape)
    (1, 2, 4)
    """

    def call(self, inputs):
        ids = ops.cast(inputs, "int32")
        return ops.cast(tf.gather(self.embeddings.value, ids), self.compute_dtype)
