"""Training state that Keras's weights files leave out, as JSON-ready lists.

A backup that resumes a run exactly needs, besides the weights and the
optimizer: the state of every `keras.random.SeedGenerator` (dropout,
embedding noise), or the resumed run draws other noise; and, when it was
taken in the middle of an epoch, the metric variables (the running sums
behind the epoch means in the logs), or the resumed epoch's logs would
average only the batches after the resume.

>>> import keras
>>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dropout(0.5, seed=7)])
>>> [state for path, state in seed_states(model)]
[[7, 0]]
"""

import numpy as np


def seed_states(model):
    """`[[path, [int, ...]], ...]`: the state of each `SeedGenerator` of `model`.

    They are the model's `variables` that are not `weights`; JSON-ready.

    Example:
    >>> import keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dropout(0.5, seed=7)])
    >>> [state for path, state in seed_states(model)]
    [[7, 0]]
    """
    return [[v.path, np.asarray(v).tolist()] for v in _seed_variables(model)]


def set_seed_states(model, states):
    """Restores `seed_states(model)`'s output into `model` (same layers, same order).

    Example:
    >>> import keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dropout(0.5, seed=7)])
    >>> (path, state), = seed_states(model)
    >>> set_seed_states(model, [[path, [7, 3]]])
    >>> seed_states(model)[0][1]
    [7, 3]
    """
    _assign(_seed_variables(model), states, "random seed states", "SeedGenerators")


def metric_states(model):
    """`[[path, value], ...]`: every metric variable of `model` (the running epoch means).

    Example:
    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> _ = model.fit(np.ones((4, 2)), np.ones(4), verbose=0)
    >>> [path for path, value in metric_states(model)]
    ['loss/total', 'loss/count']
    """
    return [[v.path, np.asarray(v).tolist()] for v in model.metrics_variables]


def set_metric_states(model, states):
    """Restores `metric_states(model)`'s output into `model`.

    Example:
    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> _ = model.fit(np.ones((4, 2)), np.ones(4), verbose=0)
    >>> set_metric_states(model, [["loss/total", 6.0], ["loss/count", 3.0]])
    >>> float(model.metrics[0].result())
    2.0
    """
    _assign(model.metrics_variables, states, "metric states", "metric variables")


def _assign(variables, states, what, kind):
    # By position, not by path: Keras numbers unnamed SeedGenerators per
    # process (seed_generator_3), so a model rebuilt in the same process
    # has other paths than the one that was saved.
    values = [np.asarray(value) for _, value in states]
    if [v.shape for v in values] != [tuple(v.shape) for v in variables]:
        raise ValueError(
            f"Cannot restore the {what}: received states for "
            f"{[(path, v.shape) for (path, _), v in zip(states, values)]}, expected "
            f"{[(v.path, tuple(v.shape)) for v in variables]} (the model's {kind}, "
            "in order, with their shapes). The backup is of another model: remove it "
            "to start afresh."
        )
    for variable, value in zip(variables, values):
        variable.assign(value.astype(variable.dtype))


def _seed_variables(model):
    """The model's `variables` that are not `weights`: its SeedGenerators' states."""
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights]
