"""vtrain: multi-term losses for Keras 3.

Subclass `vtrain.Model`, override `compute_losses(data, training)` to return a
dict of named scalar terms, and call `fit` with no loss argument.
"""

try:
    import tensorflow as _tf  # noqa: F401
except ImportError as _error:
    raise ImportError(
        "vtrain needs TensorFlow 2.21, which is not installed. Install vtrain "
        "with one of its extras: pip install 'vtrain[cpu]' (or '[gpu]')."
    ) from _error

import keras as _keras

if _keras.backend.backend() != "tensorflow":
    raise ImportError(
        "vtrain needs the TensorFlow backend of Keras 3, but KERAS_BACKEND is "
        f"{_keras.backend.backend()!r}. Set KERAS_BACKEND=tensorflow."
    )

from vtrain import _keras_compat  # noqa: E402

_keras_compat.check_versions()

from vtrain import (  # noqa: E402
    callbacks,
    distribute,
    io,
    layers,
    optimizers,
    schedules,
    vocabulary,
)
from vtrain.model import Model  # noqa: E402
from vtrain.variational import VariationalModel  # noqa: E402

__version__ = "0.1.0"
