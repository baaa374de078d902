"""Every use of a private Keras or TensorFlow API in vtrain, each with its reason.

Checked against Keras 3.15.1 and TensorFlow 2.21.0 (the versions the tests
run on; `setup.cfg` pins the range). When Keras moves one of these, this is
the one file to change. Importing vtrain with a Keras outside the tested
range warns (`check_versions`).

Private methods vtrain overrides (the same Keras versions): `LazyAdam.
_clip_gradients` (`vtrain.optimizers`), because Keras's clipping multiplies
`IndexedSlices`, which TensorFlow does not support; `vtrain.Model.
_maybe_symbolic_build` and `_symbolic_build` (`vtrain.model`), because
Keras builds the optimizer and metric state before the first trace only
under `tf.distribute`, and a trace that creates variables is traced twice.
"""

import warnings

import keras
import tensorflow as tf

# The range `setup.cfg` pins and the tests ran on (lower inclusive, upper
# exclusive), as (major, minor) pairs.
KERAS_RANGE = ((3, 15), (3, 16))
TENSORFLOW_RANGE = ((2, 21), (2, 22))

# `vtrain.Model` used functionally (`Model(inputs, outputs)`) must become a
# Functional subclass without keras.Model.__init__ rewriting the user's
# class hierarchy in place; these are the two classes that rewrite stitches.
from keras.src.backend.tensorflow.trainer import TensorFlowTrainer  # noqa: E402
from keras.src.models.functional import Functional  # noqa: E402

# A generated functional variant must save and load under the user's class
# name; Keras keeps that mapping in this registry.
from keras.src.saving.object_registration import GLOBAL_CUSTOM_NAMES  # noqa: E402

# Keras's monitor callbacks look for a metric's direction only among the
# metrics of a MetricsList (or CompileMetrics) in `model.metrics`.
from keras.src.trainers.compile_utils import MetricsList  # noqa: E402

# ModelCheckpoint's own progress message, printed the way Keras prints it.
from keras.src.utils.io_utils import print_msg  # noqa: E402


class LowerIsBetterMean(keras.metrics.Mean):
    """A `keras.metrics.Mean` that tells Keras's callbacks lower is better.

    `EarlyStopping`, `ModelCheckpoint` and `ReduceLROnPlateau` with the
    default `mode="auto"` read the private `_direction` attribute of the
    metric named like the monitored value (Keras's accuracy metrics set it
    to `"up"`); a plain `Mean` has none, and the callback raises.

    Example:
    >>> LowerIsBetterMean(name="kl")._direction
    'down'
    """

    _direction = "down"


class MetricGroup(MetricsList):
    """Metrics reported together in `model.metrics`, each under its own name.

    A `MetricsList` because that is where Keras 3.15's
    `MonitorCallback._set_monitor_op` looks for a metric's `_direction`;
    `result()` returns `{name: value}`, which `get_metrics_result()` merges
    into the logs as it does for Keras's compiled metrics.

    Example:
    >>> group = MetricGroup(name="terms")
    >>> group.add(LowerIsBetterMean(name="kl")).update_state(2.0)
    >>> {name: float(value) for name, value in group.result().items()}
    {'kl': 2.0}
    """

    def __init__(self, name):
        super().__init__([], name=name)

    def add(self, metric):
        """Appends `metric` (tracked: its variables are the group's); returns it."""
        self.metrics.append(metric)
        return metric

    def result(self):
        return {metric.name: metric.result() for metric in self.metrics}


def compute_output_spec(function, *args):
    """Traces `function` on symbolic tensors (no public equivalent in Keras 3.15).

    vtrain uses it to discover the loss terms, and build every variable,
    before the first real trace, so the step is traced once.
    """
    return keras.src.backend.compute_output_spec(function, *args)


def all_layers(model):
    """Every layer inside `model`, recursively, `model` excluded.

    `Layer._flatten_layers` is the only recursive walk Keras 3.15 has; a
    model's `layers` lists its direct children only.

    Example:
    >>> inner = keras.Sequential([keras.layers.Dense(2)])
    >>> outer = keras.Sequential([keras.Input((3,)), inner])
    >>> [type(layer).__name__ for layer in all_layers(outer)
    ...  if not isinstance(layer, keras.layers.InputLayer)]
    ['Sequential', 'Dense']
    """
    return list(model._flatten_layers(include_self=False, recursive=True))


def in_multi_worker_mode(strategy):
    """True when a `MultiWorkerMirroredStrategy` spans several workers.

    Keras 3.15 reduces a step's logs across workers with
    `strategy.reduce(..., axis=0)`, which fails on scalars; the step must
    know whether that reduction will happen. TF has no public flag for it.
    """
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and (
        strategy.extended._in_multi_worker_mode()
    )


def set_initial_epoch(model, epoch):
    """Makes `fit` start at `epoch`, as Keras's own BackupAndRestore does.

    `fit` reads `model._initial_epoch` after `on_train_begin`; it is how a
    restored backup resumes at its epoch (Keras 3.15 has no public hook).
    """
    model._initial_epoch = epoch


def adam_slots(optimizer):
    """Adam's first- and second-moment variables (private lists in Keras 3.15).

    For benchmarks that time the update kernel alone.
    """
    return optimizer._momentums, optimizer._velocities


def _version(text):
    return tuple(int(part) for part in text.split(".")[:2] if part.isdigit())


def check_versions(keras_version=None, tensorflow_version=None):
    """Warns once if Keras or TensorFlow is outside the range vtrain was tested on.

    Returns the warning messages (empty when both are in range).

    Example:
    >>> check_versions("3.15.1", "2.21.0")
    []
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     check_versions("3.9.0", "2.21.0")[0][:40]
    'vtrain was tested with keras >=3.15,<3.1'
    """
    found = {
        "keras": keras_version or keras.__version__,
        "tensorflow": tensorflow_version or tf.__version__,
    }
    messages = []
    for name, (low, high) in (("keras", KERAS_RANGE), ("tensorflow", TENSORFLOW_RANGE)):
        version = _version(found[name])
        if not low <= version < high:
            message = (
                f"vtrain was tested with {name} >={low[0]}.{low[1]},<{high[0]}.{high[1]} "
                f"but {name} {found[name]} is installed; vtrain uses private "
                f"{name} APIs (vtrain/_keras_compat.py) that may have moved. "
                f"Install a tested version: pip install 'vtrain[cpu]' pins them."
            )
            warnings.warn(message, stacklevel=2)
            messages.append(message)
    return messages
