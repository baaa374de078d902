"""Schedules: pure functions of the epoch.

A schedule maps an epoch index (0, 1, 2, ...) to a float. It is *pure*: the
same epoch always gives the same value, and calling it changes nothing. That
is what lets `vtrain.Model` evaluate it at each epoch start, store the value
in a variable, and resume training at any epoch with the right value.
Schedules are evaluated eagerly in Python (e.g. from a callback), not inside
a traced training step; the epoch may be an int, a NumPy integer, or a 0-d
variable or tensor holding a whole number.

Every schedule is a frozen dataclass: immutable, compared by its arguments,
and saved inside a model's config (`get_config()` / `from_config()`,
registered with Keras under the package name ``"vtrain"``).

>>> import vtrain.schedules as vs
>>> warmup = vs.linear_warmup(1.0, warmup_epochs=4)
>>> [warmup(epoch) for epoch in range(6)]
[0.0, 0.25, 0.5, 0.75, 1.0, 1.0]

Schedules, each under the lower-case name users type (`linear_warmup` is
`LinearWarmup`): `constant`, `linear_warmup`, `cubic`, `geometric_warmup`,
`cyclical`, `step_decay`, `exponential_decay`, and `vocabulary_ramp` (the KL
weight and the learning rate of variational vocabulary selection, together).
`as_schedule` turns a number or any callable into a `Schedule`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import operator
import re
from collections.abc import Callable

import keras
import numpy as np

__all__ = [
    "CallableSchedule",
    "Constant",
    "Cubic",
    "Cyclical",
    "ExponentialDecay",
    "GeometricWarmup",
    "LinearWarmup",
    "Schedule",
    "StepDecay",
    "VocabularyRamp",
    "as_schedule",
    "constant",
    "cubic",
    "cyclical",
    "exponential_decay",
    "geometric_warmup",
    "linear_warmup",
    "step_decay",
    "vocabulary_ramp",
]

_register = keras.saving.register_keras_serializable(package="vtrain")


# Argument checks: `check(name, value, owner)` returns the value to store (a
# float or an int, so configs are plain JSON) or raises, saying what was
# received and what is expected.


def _real(name, value, owner):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{owner} received {name}={value!r} of type {type(value).__name__}; "
            "expected a real number such as 0.5."
        )
    if not math.isfinite(value := float(value)):
        raise ValueError(
            f"{owner} received {name}={value}; expected a finite number. Pass a finite {name}."
        )
    return value


def _positive(hint):
    def check(name, value, owner):
        if (value := _real(name, value, owner)) <= 0:
            raise ValueError(f"{owner} received {name}={value}; expected a value > 0. {hint}")
        return value

    return check


def _count(minimum):
    def check(name, value, owner):
        try:
            integer = None if isinstance(value, bool) else operator.index(value)
        except TypeError:
            integer = None
        if integer is None:
            raise TypeError(
                f"{owner} received {name}={value!r} of type "
                f"{type(value).__name__}; expected an integer number of epochs "
                f">= {minimum}."
            )
        if integer < minimum:
            raise ValueError(
                f"{owner} received {name}={integer}; expected an integer >= "
                f"{minimum}. Pass {name}={minimum} or more."
            )
        return integer

    return check


def _arg(check, default=dataclasses.MISSING):
    """A dataclass field that `__post_init__` validates with `check`."""
    return dataclasses.field(default=default, metadata={"check": check})


def _epoch(epoch, schedule):
    """Returns `epoch` as a non-negative int; errors name `schedule`."""
    if isinstance(epoch, bool):
        raise TypeError(
            f"{schedule!r} received epoch={epoch!r} (a bool); expected a "
            "non-negative integer epoch index such as 0, 1, 2. Pass the "
            "epoch number, not a flag."
        )
    if not isinstance(epoch, numbers.Number) and hasattr(epoch, "__array__"):
        # The epoch often lives in a Keras variable (`model.epoch`); read a
        # 0-d array, variable or eager tensor as the number it holds.
        array = np.asarray(epoch)
        epoch = array.item() if array.ndim == 0 else epoch
    try:
        value = operator.index(epoch)
    except TypeError:
        # A float epoch is accepted when it is integral: a Keras variable
        # holding the epoch may be read back as 3.0.
        if not isinstance(epoch, numbers.Real):
            raise TypeError(
                f"{schedule!r} received epoch={epoch!r} of type "
                f"{type(epoch).__name__}; expected a non-negative integer "
                "epoch index (0, 1, 2, ...). Convert it with int(epoch)."
            ) from None
        if not float(epoch).is_integer():
            raise ValueError(
                f"{schedule!r} received epoch={epoch!r}, which is not a whole "
                "number; expected a non-negative integer epoch index "
                "(0, 1, 2, ...). Schedules are evaluated once per epoch: pass "
                "int(epoch)."
            ) from None
        value = int(epoch)
    if value < 0:
        raise ValueError(
            f"{schedule!r} received epoch={value}; expected a non-negative epoch "
            "index (epochs count from 0). Pass the 0-based epoch number."
        )
    return value


def _frozen(cls):
    """Makes `cls` a frozen dataclass that keeps `_Frozen`'s methods."""
    cls = dataclasses.dataclass(frozen=True, eq=False, repr=False)(cls)
    del cls.__setattr__, cls.__delattr__  # _Frozen's errors say how to fix it
    return cls


class _Frozen:
    """Immutability, config, equality and repr shared by every schedule.

    A dataclass subclass gets `get_config()` from its fields, each checked
    (and converted) in `__post_init__` by the check its `_arg` names.
    """

    _noun = "schedule"

    @property
    def _owner(self):
        # The name users build it by, for errors: LinearWarmup -> linear_warmup().
        return re.sub(r"(?<!^)(?=[A-Z])", "_", type(self).__name__).lower() + "()"

    def __post_init__(self):
        for field in dataclasses.fields(self):
            check, value = field.metadata.get("check"), getattr(self, field.name)
            if value is None and field.default is None:
                continue  # None is valid where it is the default
            if check:
                value = check(field.name, value, self._owner)
                object.__setattr__(self, field.name, value)

    def get_config(self) -> dict:
        """Returns the constructor's keyword arguments as plain numbers."""
        if not dataclasses.is_dataclass(self):
            raise NotImplementedError(
                f"{type(self).__name__} must implement get_config() returning "
                "its constructor arguments, so that it can be saved with a "
                "model (or be a dataclass, whose fields are the config)."
            )
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    @classmethod
    def from_config(cls, config: dict):
        """Rebuilds the schedule from `get_config()`'s output."""
        return cls(**config)

    def _set(self, **attributes):
        # Frozen after construction: a schedule that could be mutated
        # mid-training would no longer be a pure function of the epoch.
        for name, value in attributes.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError(
            f"{type(self).__name__} is immutable: cannot set {name!r}. Build a "
            f"new {self._noun} with the changed argument instead."
        )

    def __delattr__(self, name):
        raise AttributeError(f"{type(self).__name__} is immutable: cannot delete {name!r}.")

    def _key(self):
        return tuple(sorted(self.get_config().items()))

    def __eq__(self, other):
        if type(self) is not type(other):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self):
        return hash((type(self), self._key()))

    def __repr__(self):
        try:
            config = self.get_config()
        except (NotImplementedError, TypeError):
            return f"{type(self).__name__}()"  # a repr used in errors must not fail
        arguments = ", ".join(f"{name}={value!r}" for name, value in config.items())
        return f"{type(self).__name__}({arguments})"


class Schedule(_Frozen):
    """Base class of every schedule: an immutable, pure `epoch -> float`.

    Subclasses implement `value_at(epoch)`, which receives an already
    validated non-negative int. A frozen dataclass subclass needs nothing
    else: its fields are its config. Register it to save it inside a model:

    >>> import dataclasses, keras
    >>> @keras.saving.register_keras_serializable(package="my_project")
    ... @dataclasses.dataclass(frozen=True)
    ... class Halving(Schedule):
    ...     initial_value: float
    ...     def value_at(self, epoch):
    ...         return self.initial_value / 2**epoch
    >>> halving = Halving(1.0)
    >>> halving(3)
    0.125
    >>> halving == Halving.from_config(halving.get_config())
    True
    """

    def __call__(self, epoch) -> float:
        """Returns the value at `epoch` (a non-negative integer)."""
        return float(self.value_at(_epoch(epoch, self)))

    def value_at(self, epoch: int) -> float:
        """Returns the value at a validated non-negative int `epoch`."""
        raise NotImplementedError(f"{type(self).__name__} must implement value_at(epoch) -> float.")


@_register
@_frozen
class Constant(Schedule):
    """The same `value` at every epoch.

    >>> constant(0.1)(0), constant(0.1)(99)
    (0.1, 0.1)
    """

    value: float = _arg(_real)

    def value_at(self, epoch):
        return self.value


@_frozen
class _Ramp(Schedule):
    """`initial_value` up to `start_epoch`, `final_value` from its end.

    Subclasses give the shape in between, `_between(t)` for 0 < t < 1.
    """

    final_value: float = _arg(_real)
    warmup_epochs: int = _arg(_count(0))
    initial_value: float = _arg(_real, 0.0)
    start_epoch: int = _arg(_count(0), 0)

    def value_at(self, epoch):
        # Ends are returned, not computed: 0.1 + (0.3 - 0.1) * 1.0 is not 0.3.
        if epoch >= self.start_epoch + self.warmup_epochs:
            return self.final_value  # also warmup_epochs == 0: a step at start
        if epoch <= self.start_epoch:
            return self.initial_value
        return self._between((epoch - self.start_epoch) / self.warmup_epochs)


@_register
@_frozen
class LinearWarmup(_Ramp):
    """`initial_value` until `start_epoch`, then linear to `final_value`.

    The value is `initial_value` at every epoch <= `start_epoch`, reaches
    `final_value` exactly at `start_epoch + warmup_epochs`, and stays there.
    `warmup_epochs=0` is a step from `initial_value` to `final_value` at
    `start_epoch`.

    >>> warmup = linear_warmup(1.0, warmup_epochs=2, start_epoch=1)
    >>> [warmup(epoch) for epoch in range(5)]
    [0.0, 0.0, 0.5, 1.0, 1.0]
    """

    def _between(self, t):
        return self.initial_value + (self.final_value - self.initial_value) * t


@_register
@_frozen
class Cubic(_Ramp):
    """Like `linear_warmup`, but `initial + (final - initial) * t**3`.

    `t = (epoch - start_epoch) / warmup_epochs`, clipped to [0, 1]: slow at
    first, steep at the end.

    >>> ramp = cubic(8.0, warmup_epochs=2)
    >>> [ramp(epoch) for epoch in range(4)]
    [0.0, 1.0, 8.0, 8.0]
    """

    def _between(self, t):
        return self.initial_value + (self.final_value - self.initial_value) * t**3


_GEOMETRIC = (
    "A geometric ramp interpolates log(value), so both ends must be "
    "positive; use linear_warmup() to ramp from or to 0."
)


@_register
@_frozen
class GeometricWarmup(_Ramp):
    """Like `linear_warmup`, but linear in log space (both ends > 0).

    `value = initial * (final / initial) ** t` with
    `t = (epoch - start_epoch) / warmup_epochs` clipped to [0, 1]; the ends
    are exact. Suited to weights that span orders of magnitude: equal steps
    in log space spend equal time on each decade, where a linear ramp would
    jump past the small values in the first epoch.

    >>> ramp = geometric_warmup(1e-4, warmup_epochs=2, initial_value=1e-6)
    >>> [round(ramp(epoch), 12) for epoch in range(4)]
    [1e-06, 1e-05, 0.0001, 0.0001]
    """

    final_value: float = _arg(_positive(_GEOMETRIC))
    initial_value: float = _arg(_positive(_GEOMETRIC))  # no default here

    def _between(self, t):
        return self.initial_value * (self.final_value / self.initial_value) ** t


@_register
@_frozen
class Cyclical(Schedule):
    """Cyclical annealing of Fu et al. (2019), "Cyclical Annealing Schedule".

    `total_epochs` is split into `cycles` equal cycles of length
    `total_epochs / cycles` (not necessarily whole epochs). Within each cycle
    the value rises linearly from `min_value` (at the cycle's first epoch) to
    `max_value` over the first `ratio` of the cycle, then stays at
    `max_value` until the next cycle starts. From `total_epochs` on, the
    value stays at `max_value`.

    >>> anneal = cyclical(1.0, total_epochs=8, cycles=2, ratio=0.5)
    >>> [anneal(epoch) for epoch in range(9)]
    [0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0, 1.0, 1.0]
    """

    max_value: float = _arg(_real)
    total_epochs: int = _arg(_count(1))
    cycles: int = _arg(_count(1), 4)
    ratio: float = _arg(_real, 0.5)
    min_value: float = _arg(_real, 0.0)

    def __post_init__(self):
        super().__post_init__()
        if self.cycles > self.total_epochs:
            raise ValueError(
                f"{self._owner} received cycles={self.cycles} with total_epochs="
                f"{self.total_epochs}; expected cycles <= total_epochs so each "
                "cycle lasts at least one epoch. Use fewer cycles or more epochs."
            )
        if not 0.0 < self.ratio <= 1.0:
            raise ValueError(
                f"{self._owner} received ratio={self.ratio}; expected 0 < ratio "
                "<= 1 (the fraction of each cycle spent rising from min_value "
                "to max_value). Fu et al. use ratio=0.5."
            )

    def value_at(self, epoch):
        if epoch >= self.total_epochs:
            return self.max_value
        # Integer arithmetic keeps cycle boundaries exact when total_epochs
        # is not a multiple of cycles: the cycle length is total/cycles, so
        # the position within the cycle, in epochs, is (epoch*cycles -
        # cycle*total) / cycles.
        cycle = epoch * self.cycles // self.total_epochs
        position = epoch * self.cycles - cycle * self.total_epochs
        fraction = position / (self.total_epochs * self.ratio)
        if fraction <= 0.0 or fraction >= 1.0:  # ends exact, as in _Ramp
            return self.min_value if fraction <= 0.0 else self.max_value
        return self.min_value + (self.max_value - self.min_value) * fraction


@_register
@_frozen
class StepDecay(Schedule):
    """`initial_value * decay_rate ** floor(epoch / step_epochs)`.

    >>> decay = step_decay(1.0, decay_rate=0.5, step_epochs=2)
    >>> [decay(epoch) for epoch in range(5)]
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """

    initial_value: float = _arg(_real)
    decay_rate: float = _arg(
        _positive(
            "The value is multiplied by decay_rate every step_epochs; use e.g. 0.5 to halve it."
        )
    )
    step_epochs: int = _arg(_count(1))

    def value_at(self, epoch):
        return self.initial_value * self.decay_rate ** (epoch // self.step_epochs)


@_register
@_frozen
class ExponentialDecay(Schedule):
    """`initial_value * decay_rate ** epoch`.

    >>> decay = exponential_decay(2.0, decay_rate=0.5)
    >>> [decay(epoch) for epoch in range(4)]
    [2.0, 1.0, 0.5, 0.25]
    """

    initial_value: float = _arg(_real)
    decay_rate: float = _arg(
        _positive("The value is multiplied by decay_rate every epoch; use e.g. 0.9.")
    )

    def value_at(self, epoch):
        return self.initial_value * self.decay_rate**epoch


@_frozen
class CallableSchedule(Schedule):
    """A plain callable `epoch -> float` seen as a `Schedule`.

    Made by `as_schedule(fn)`. The callable must be pure (same epoch, same
    value, no side effects); this cannot be checked, so it is the caller's
    promise. Such a schedule works in training but cannot be saved with a
    model: `get_config()` raises a `TypeError` that says so.

    >>> halve = CallableSchedule(lambda epoch: 0.5**epoch)
    >>> halve(2)
    0.25
    """

    fn: Callable[[int], float]

    def __post_init__(self):
        if not callable(self.fn):
            raise TypeError(
                f"CallableSchedule received {self.fn!r} of type "
                f"{type(self.fn).__name__}; expected a callable epoch -> float."
            )

    def value_at(self, epoch):
        value = self.fn(epoch)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise TypeError(
                f"The schedule {self.fn!r} returned {value!r} of type "
                f"{type(value).__name__} at epoch {epoch}; expected a float. "
                "Make the callable return a single number."
            ) from None

    def get_config(self):
        """Raises: a plain callable has no config to save."""
        name = getattr(self.fn, "__qualname__", repr(self.fn))
        raise TypeError(
            f"Cannot serialise a schedule that wraps the plain callable "
            f"{name}: a Python function or lambda has no config to save. "
            "Expected a vtrain.schedules factory (constant, linear_warmup, "
            "cubic, cyclical, step_decay, exponential_decay, ...) or a "
            "Schedule subclass with get_config() registered via "
            "keras.saving.register_keras_serializable. Replace the callable "
            "with one of those before saving the model."
        )

    def _key(self):
        return id(self.fn)  # equal when wrapping the very same callable

    def __repr__(self):
        return f"CallableSchedule({self.fn!r})"


_KL_WEIGHT = (
    "The KL weight ramps geometrically (linearly in log space), so both "
    "weights must be positive; the reference uses about 1 / num_train_examples."
)


@_register
@_frozen
class VocabularyRamp(_Frozen):
    """The KL-weight and learning-rate ramp of variational vocabulary selection.

    Follows `get_decay_rate(epoch)` of Chen et al. (NAACL 2019,
    wenhuchen/Variational-Vocabulary-Selection), as a pure function:

    - KL weight: `small_weight` at every epoch <= `start_epoch`, then a
      *geometric* ramp (linear in log space) that reaches exactly
      `large_weight` at the last epoch, `total_epochs - 1`, and stays there.
      Geometric because the weights span orders of magnitude (1e-7 to 1e-4,
      about 1/N_train): a linear ramp would pass 10 * small_weight after a
      few percent of the span and spend most of it near `large_weight`.
    - Learning rate: `learning_rate` at every epoch <= `start_epoch`, then
      linear to `final_learning_rate` (default: unchanged) over the same
      span.

    The reference measured progress as `epoch - small` (the small weight)
    instead of `epoch - start`; since the small weight is tiny, the ramp
    started as if `start_epoch` epochs had already passed and jumped. Here
    progress is `(epoch - start_epoch) / (total_epochs - 1 - start_epoch)`,
    so the weight is continuous at `start_epoch`.

    `ramp(epoch)` gives `(weight_decay, learning_rate)`. The halves are
    ordinary schedules: pass them to a model as
    `loss_weights={"kl": ramp.weight_decay}` and
    `learning_rate=ramp.learning_rate`.

    >>> ramp = vocabulary_ramp(1e-6, 1e-4, start_epoch=1, total_epochs=4,
    ...                        learning_rate=1e-3, final_learning_rate=4e-4)
    >>> [(round(w, 12), round(lr, 12)) for w, lr in map(ramp, range(5))]
    [(1e-06, 0.001), (1e-06, 0.001), (1e-05, 0.0007), (0.0001, 0.0004), (0.0001, 0.0004)]
    >>> ramp.weight_decay(3), ramp.learning_rate
    (0.0001, LinearWarmup(final_value=0.0004, warmup_epochs=2, initial_value=0.001, start_epoch=1))
    """

    _noun = "ramp"

    small_weight: float = _arg(_positive(_KL_WEIGHT))
    large_weight: float = _arg(_positive(_KL_WEIGHT))
    start_epoch: int = _arg(_count(0))
    total_epochs: int = _arg(_count(2))
    learning_rate: float = _arg(_positive("Pass e.g. 1e-3."))
    final_learning_rate: float | None = _arg(
        _positive("Pass e.g. 1e-4, or None to keep learning_rate."), None
    )

    def __post_init__(self):
        super().__post_init__()
        last_epoch = self.total_epochs - 1
        if self.start_epoch >= last_epoch:
            raise ValueError(
                f"{self._owner} received start_epoch={self.start_epoch} with "
                f"total_epochs={self.total_epochs}; expected start_epoch < "
                f"total_epochs - 1 = {last_epoch} so that the ramp spans at "
                "least one epoch. Lower start_epoch or train longer (or use "
                "constant() for a fixed weight)."
            )
        span = {
            "warmup_epochs": last_epoch - self.start_epoch,
            "start_epoch": self.start_epoch,
        }
        final_rate = self.final_learning_rate
        # From here on `learning_rate` is the schedule; get_config() keeps the number.
        self._set(
            weight_decay=GeometricWarmup(
                self.large_weight, initial_value=self.small_weight, **span
            ),
            learning_rate=LinearWarmup(
                self.learning_rate if final_rate is None else final_rate,
                initial_value=self.learning_rate,
                **span,
            ),
        )

    def __call__(self, epoch) -> tuple[float, float]:
        """Returns `(weight_decay, learning_rate)` at `epoch`."""
        return self.weight_decay(epoch), self.learning_rate(epoch)

    def get_config(self):
        """Returns the constructor's keyword arguments."""
        return {
            **super().get_config(),
            "learning_rate": self.learning_rate.initial_value,
        }


# The names users type: each schedule class is its own factory.
constant = Constant
linear_warmup = LinearWarmup
cubic = Cubic
geometric_warmup = GeometricWarmup
cyclical = Cyclical
step_decay = StepDecay
exponential_decay = ExponentialDecay
vocabulary_ramp = VocabularyRamp


def as_schedule(value) -> Schedule:
    """Turns a number or a callable into a `Schedule`.

    - an int or float -> `constant(value)`;
    - a `Schedule` -> itself;
    - any other callable `epoch -> float` -> a `CallableSchedule` wrapping it.
      The callable must be a pure function of the epoch (same epoch, same
      value, no side effects). It trains fine but cannot be saved with a
      model: serialising it raises a `TypeError` that says so.

    >>> as_schedule(0.5)
    Constant(value=0.5)
    >>> as_schedule(lambda epoch: 0.9**epoch)(2)
    0.81
    """
    if isinstance(value, Schedule):
        return value
    if isinstance(value, VocabularyRamp):
        raise TypeError(
            "as_schedule() received a VocabularyRamp, which returns a pair "
            "(weight_decay, learning_rate), not one float. Pass "
            "ramp.weight_decay as the KL weight and ramp.learning_rate as "
            "the learning rate."
        )
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return Constant(value)
    if callable(value):
        return CallableSchedule(value)
    raise TypeError(
        f"as_schedule() received {value!r} of type {type(value).__name__}; "
        "expected a number, a vtrain.schedules.Schedule, or a callable "
        "epoch -> float. For example: 0.1, linear_warmup(1.0, 5), or "
        "lambda epoch: 1e-3 * 0.9 ** epoch."
    )
