"""One contract every vtrain layer passes (after Keras's own layer tests).

Shapes, weight counts, a config round trip, a `.keras` save/load round trip
with equal outputs and equal weights, and one training step that changes
every trainable weight.
"""

import keras
import numpy as np
import tensorflow as tf


def check_layer_contract(
    layer_cls,
    init_kwargs,
    input_data,
    expected_output_shape,
    expected_trainable_weights,
    expected_non_trainable_weights=0,
    tmp_path=None,
):
    layer = layer_cls(**init_kwargs)
    output = layer(input_data)
    assert tuple(output.shape) == tuple(expected_output_shape)
    assert len(layer.trainable_weights) == expected_trainable_weights
    assert len(layer.non_trainable_weights) == expected_non_trainable_weights

    clone = layer_cls.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()

    inputs = keras.Input(input_data.shape[1:], dtype=input_data.dtype)
    model = keras.Model(inputs, layer_cls(**init_kwargs)(inputs))
    path = str(tmp_path / "layer.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(
        model.predict(input_data, verbose=0), loaded.predict(input_data, verbose=0)
    )
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    before = [w.numpy().copy() for w in model.trainable_weights]
    with tf.GradientTape() as tape:
        out = model(input_data, training=True)
        loss = tf.reduce_sum(tf.square(out))
        if hasattr(model.layers[-1], "regularizer"):
            loss += model.layers[-1].regularizer()
    grads = tape.gradient(loss, model.trainable_weights)
    keras.optimizers.SGD(0.1).apply_gradients(zip(grads, model.trainable_weights))
    for old, new in zip(before, model.trainable_weights):
        assert not np.array_equal(old, new.numpy()), new.path
