"""Schedules: pure functions of the epoch.

A schedule maps an epoch index (0, 1, 2, ...) to a float. It is *pure*: the
same epoch always gives the same value, and calling it changes nothing. That
is what lets `vtrain.Model` evaluate it at each epoch start, store the value
in a variable, and resume training at any epoch with the right value.
Schedules are evaluated eagerly in Python (e.g. from a callback), not inside
a traced training step; the epoch may be an int, a NumPy integer, or a 0-d
variable or tensor holding a whole number.

Every factory below returns an immutable `Schedule` that can be saved inside a
model's config (`get_config()` / `from_config()`, registered with Keras under
the package name ``"vtrain"``) and compares equal to its reloaded copy.

>>> import vtrain.schedules as vs
>>> warmup = vs.linear_warmup(1.0, warmup_epochs=4)
>>> [warmup(epoch) for epoch in range(6)]
[0.0, 0.25, 0.5, 0.75, 1.0, 1.0]

Factories: `constant`, `linear_warmup`, `cubic`, `geometric_warmup`,
`cyclical`, `step_decay`, `exponential_decay`, and `vocabulary_ramp` (the KL
weight and the learning rate of variational vocabulary selection, together).
`as_schedule` turns a number or any callable into a `Schedule`.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any, Callable

import keras
import numpy as np

__all__ = [
    "Schedule",
    "Constant",
    "LinearWarmup",
    "Cubic",
    "GeometricWarmup",
    "Cyclical",
    "StepDecay",
    "ExponentialDecay",
    "CallableSchedule",
    "VocabularyRamp",
    "constant",
    "linear_warmup",
    "cubic",
    "geometric_warmup",
    "cyclical",
    "step_decay",
    "exponential_decay",
    "vocabulary_ramp",
    "as_schedule",
]

_register = keras.saving.register_keras_serializable(package="vtrain")


# --------------------------------------------------------------------------
# Argument checks (shared by every schedule).
# --------------------------------------------------------------------------


def _check_epoch(epoch: Any, owner: str) -> int:
    """Returns `epoch` as a non-negative int, or raises a helpful error."""
    if isinstance(epoch, bool):
        raise TypeError(
            f"{owner} received epoch={epoch!r} (a bool); expected a "
            "non-negative integer epoch index such as 0, 1, 2. Pass the "
            "epoch number, not a flag."
        )
    if not isinstance(epoch, numbers.Number) and hasattr(epoch, "__array__"):
        # The epoch often lives in a Keras variable (`model.epoch`); read a
        # 0-d array, variable or eager tensor as the number it holds.
        array = np.asarray(epoch)
        if array.ndim == 0:
            epoch = array.item()
    try:
        value = operator.index(epoch)
    except TypeError:
        # A float epoch is accepted when it is integral: a Keras variable
        # holding the epoch may be read back as 3.0.
        if isinstance(epoch, numbers.Real) and float(epoch).is_integer():
            value = int(epoch)
        elif isinstance(epoch, numbers.Real):
            raise ValueError(
                f"{owner} received epoch={epoch!r}, which is not a whole "
                "number; expected a non-negative integer epoch index "
                "(0, 1, 2, ...). Schedules are evaluated once per epoch: pass "
                "int(epoch)."
            ) from None
        else:
            raise TypeError(
                f"{owner} received epoch={epoch!r} of type "
                f"{type(epoch).__name__}; expected a non-negative integer "
                "epoch index (0, 1, 2, ...). Convert it with int(epoch)."
            ) from None
    if value < 0:
        raise ValueError(
            f"{owner} received epoch={value}; expected a non-negative epoch "
            "index (epochs count from 0). Pass the 0-based epoch number."
        )
    return value


def _check_real(name: str, value: Any, owner: str) -> float:
    """Returns `value` as a finite float, or raises a helpful error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{owner} received {name}={value!r} of type "
            f"{type(value).__name__}; expected a real number such as 0.5."
        )
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(
            f"{owner} received {name}={value}; expected a finite number. "
            f"Pass a finite {name}."
        )
    return value


def _check_count(name: str, value: Any, owner: str, minimum: int = 0) -> int:
    """Returns `value` as an int >= `minimum`, or raises a helpful error."""
    if isinstance(value, bool):
        integer = None
    else:
        try:
            integer = operator.index(value)
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


def _check_positive(name: str, value: Any, owner: str, hint: str) -> float:
    value = _check_real(name, value, owner)
    if value <= 0:
        raise ValueError(
            f"{owner} received {name}={value}; expected a value > 0. {hint}"
        )
    return value


def _lerp(start: float, end: float, fraction: float) -> float:
    """Linear interpolation that returns `start` and `end` exactly at the ends.

    `start + (end - start) * 1.0` is not always `end` in floating point
    (0.1 + (0.3 - 0.1) == 0.30000000000000004), and the schedules promise to
    reach their end values exactly.
    """
    if fraction <= 0.0:
        return start
    if fraction >= 1.0:
        return end
    return start + (end - start) * fraction


# --------------------------------------------------------------------------
# Base class.
# --------------------------------------------------------------------------


class Schedule:
    """Base class of every schedule: an immutable, pure `epoch -> float`.

    Subclasses implement `value_at(epoch)` (which receives an already
    validated non-negative int) and `get_config()` (a dict of the
    constructor's keyword arguments, plain Python numbers only). The base
    class provides epoch validation in `__call__`, `from_config`, equality
    and hashing via the config, a readable `repr`, and immutability.

    To make a custom schedule savable inside a model, register it too:

    >>> import keras
    >>> @keras.saving.register_keras_serializable(package="my_project")
    ... class Halving(Schedule):
    ...     def __init__(self, initial_value):
    ...         self._set(initial_value=float(initial_value))
    ...     def value_at(self, epoch):
    ...         return self.initial_value / 2 ** epoch
    ...     def get_config(self):
    ...         return {"initial_value": self.initial_value}
    >>> halving = Halving(1.0)
    >>> halving(3)
    0.125
    >>> halving == Halving.from_config(halving.get_config())
    True
    """

    def __call__(self, epoch: int) -> float:
        """Returns the value at `epoch` (a non-negative integer)."""
        return float(self.value_at(_check_epoch(epoch, repr(self))))

    def value_at(self, epoch: int) -> float:
        """Returns the value at a validated non-negative int `epoch`."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement value_at(epoch) -> float."
        )

    def get_config(self) -> dict:
        """Returns the constructor's keyword arguments as plain numbers."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement get_config() returning its "
            "constructor arguments, so that it can be saved with a model."
        )

    @classmethod
    def from_config(cls, config: dict) -> "Schedule":
        """Rebuilds a schedule from `get_config()`'s output."""
        return cls(**config)

    def _set(self, **attributes: Any) -> None:
        # Schedules are frozen after construction: a schedule that could be
        # mutated mid-training would no longer be a pure function of the epoch.
        for name, value in attributes.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"{type(self).__name__} is immutable: cannot set {name!r}. "
            "Build a new schedule with the changed argument instead."
        )

    def __delattr__(self, name: str) -> None:
        raise AttributeError(
            f"{type(self).__name__} is immutable: cannot delete {name!r}."
        )

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(self.get_config().items()))))

    def __repr__(self) -> str:
        try:
            config = self.get_config()
        except (NotImplementedError, TypeError):
            # A repr must not fail: it is used in error messages.
            return f"{type(self).__name__}()"
        arguments = ", ".join(f"{name}={value!r}" for name, value in config.items())
        return f"{type(self).__name__}({arguments})"


# --------------------------------------------------------------------------
# Schedules.
# --------------------------------------------------------------------------


@_register
class Constant(Schedule):
    """The same value at every epoch; build it with `constant(value)`.

    >>> Constant(0.5)(7)
    0.5
    """

    def __init__(self, value: float):
        self._set(value=_check_real("value", value, "constant()"))

    def value_at(self, epoch: int) -> float:
        return self.value

    def get_config(self) -> dict:
        return {"value": self.value}


class _Ramp(Schedule):
    """Shared arguments of the warm-up ramps: only the ramp's shape differs."""

    _owner = "ramp"

    def __init__(
        self,
        final_value: float,
        warmup_epochs: int,
        initial_value: float = 0.0,
        start_epoch: int = 0,
    ):
        owner = self._owner
        self._set(
            final_value=_check_real("final_value", final_value, owner),
            warmup_epochs=_check_count("warmup_epochs", warmup_epochs, owner),
            initial_value=_check_real("initial_value", initial_value, owner),
            start_epoch=_check_count("start_epoch", start_epoch, owner),
        )

    def _fraction(self, epoch: int) -> float:
        """Ramp progress in [0, 1]: 0 up to start_epoch, 1 from its end."""
        if epoch >= self.start_epoch + self.warmup_epochs:
            return 1.0  # also covers warmup_epochs == 0 (a step at start)
        if epoch <= self.start_epoch:
            return 0.0
        return (epoch - self.start_epoch) / self.warmup_epochs

    def get_config(self) -> dict:
        return {
            "final_value": self.final_value,
            "warmup_epochs": self.warmup_epochs,
            "initial_value": self.initial_value,
            "start_epoch": self.start_epoch,
        }


@_register
class LinearWarmup(_Ramp):
    """Linear ramp between two epochs; build it with `linear_warmup(...)`.

    >>> LinearWarmup(final_value=1.0, warmup_epochs=2)(1)
    0.5
    """

    _owner = "linear_warmup()"

    def value_at(self, epoch: int) -> float:
        return _lerp(self.initial_value, self.final_value, self._fraction(epoch))


@_register
class Cubic(_Ramp):
    """Cubic ramp `initial + (final - initial) * t**3`; see `cubic(...)`.

    >>> Cubic(final_value=8.0, warmup_epochs=2)(1)
    1.0
    """

    _owner = "cubic()"

    def value_at(self, epoch: int) -> float:
        return _lerp(
            self.initial_value, self.final_value, self._fraction(epoch) ** 3
        )


@_register
class GeometricWarmup(_Ramp):
    """Ramp linear in log space; build it with `geometric_warmup(...)`.

    >>> GeometricWarmup(final_value=100.0, warmup_epochs=2, initial_value=1.0)(1)
    10.0
    """

    _owner = "geometric_warmup()"

    def __init__(
        self,
        final_value: float,
        warmup_epochs: int,
        initial_value: float,
        start_epoch: int = 0,
    ):
        super().__init__(final_value, warmup_epochs, initial_value, start_epoch)
        hint = (
            "A geometric ramp interpolates log(value), so both ends must be "
            "positive; use linear_warmup() to ramp from or to 0."
        )
        _check_positive("initial_value", initial_value, self._owner, hint)
        _check_positive("final_value", final_value, self._owner, hint)

    def value_at(self, epoch: int) -> float:
        fraction = self._fraction(epoch)
        if fraction <= 0.0:
            return self.initial_value
        if fraction >= 1.0:
            return self.final_value
        # Weights like 1e-7 .. 1e-4 span orders of magnitude: equal steps in
        # log space spend equal time on each decade, where a linear ramp
        # would jump past the small values in the first epoch.
        return self.initial_value * (self.final_value / self.initial_value) ** fraction


@_register
class Cyclical(Schedule):
    """Cyclical annealing (Fu et al., 2019); build it with `cyclical(...)`.

    >>> Cyclical(max_value=1.0, total_epochs=4, cycles=2, ratio=0.5)(2)
    0.0
    """

    _owner = "cyclical()"

    def __init__(
        self,
        max_value: float,
        total_epochs: int,
        cycles: int = 4,
        ratio: float = 0.5,
        min_value: float = 0.0,
    ):
        owner = self._owner
        total_epochs = _check_count("total_epochs", total_epochs, owner, 1)
        cycles = _check_count("cycles", cycles, owner, 1)
        if cycles > total_epochs:
            raise ValueError(
                f"{owner} received cycles={cycles} with total_epochs="
                f"{total_epochs}; expected cycles <= total_epochs so each "
                "cycle lasts at least one epoch. Use fewer cycles or more "
                "epochs."
            )
        ratio = _check_real("ratio", ratio, owner)
        if not 0.0 < ratio <= 1.0:
            raise ValueError(
                f"{owner} received ratio={ratio}; expected 0 < ratio <= 1 "
                "(the fraction of each cycle spent rising from min_value to "
                "max_value). Fu et al. use ratio=0.5."
            )
        self._set(
            max_value=_check_real("max_value", max_value, owner),
            total_epochs=total_epochs,
            cycles=cycles,
            ratio=ratio,
            min_value=_check_real("min_value", min_value, owner),
        )

    def value_at(self, epoch: int) -> float:
        if epoch >= self.total_epochs:
            return self.max_value
        # Integer arithmetic keeps cycle boundaries exact when total_epochs
        # is not a multiple of cycles: the cycle length is total/cycles, so
        # the position within the cycle, in epochs, is (epoch*cycles -
        # cycle*total) / cycles.
        cycle = epoch * self.cycles // self.total_epochs
        position = epoch * self.cycles - cycle * self.total_epochs
        fraction = position / (self.total_epochs * self.ratio)
        return _lerp(self.min_value, self.max_value, fraction)

    def get_config(self) -> dict:
        return {
            "max_value": self.max_value,
            "total_epochs": self.total_epochs,
            "cycles": self.cycles,
            "ratio": self.ratio,
            "min_value": self.min_value,
        }


@_register
class StepDecay(Schedule):
    """`initial * decay_rate ** (epoch // step_epochs)`; see `step_decay`.

    >>> StepDecay(1.0, decay_rate=0.5, step_epochs=2)(3)
    0.5
    """

    def __init__(self, initial_value: float, decay_rate: float, step_epochs: int):
        owner = "step_decay()"
        self._set(
            initial_value=_check_real("initial_value", initial_value, owner),
            decay_rate=_check_positive(
                "decay_rate",
                decay_rate,
                owner,
                "The value is multiplied by decay_rate every step_epochs; "
                "use e.g. 0.5 to halve it.",
            ),
            step_epochs=_check_count("step_epochs", step_epochs, owner, 1),
        )

    def value_at(self, epoch: int) -> float:
        return self.initial_value * self.decay_rate ** (epoch // self.step_epochs)

    def get_config(self) -> dict:
        return {
            "initial_value": self.initial_value,
            "decay_rate": self.decay_rate,
            "step_epochs": self.step_epochs,
        }


@_register
class ExponentialDecay(Schedule):
    """`initial * decay_rate ** epoch`; see `exponential_decay`.

    >>> ExponentialDecay(1.0, decay_rate=0.5)(2)
    0.25
    """

    def __init__(self, initial_value: float, decay_rate: float):
        owner = "exponential_decay()"
        self._set(
            initial_value=_check_real("initial_value", initial_value, owner),
            decay_rate=_check_positive(
                "decay_rate",
                decay_rate,
                owner,
                "The value is multiplied by decay_rate every epoch; use "
                "e.g. 0.9.",
            ),
        )

    def value_at(self, epoch: int) -> float:
        return self.initial_value * self.decay_rate**epoch

    def get_config(self) -> dict:
        return {"initial_value": self.initial_value, "decay_rate": self.decay_rate}


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

    def __init__(self, fn: Callable[[int], float]):
        if not callable(fn):
            raise TypeError(
                f"CallableSchedule received {fn!r} of type "
                f"{type(fn).__name__}; expected a callable epoch -> float."
            )
        self._set(fn=fn)

    def value_at(self, epoch: int) -> float:
        value = self.fn(epoch)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise TypeError(
                f"The schedule {self.fn!r} returned {value!r} of type "
                f"{type(value).__name__} at epoch {epoch}; expected a float. "
                "Make the callable return a single number."
            ) from None

    def get_config(self) -> dict:
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

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return self.fn is other.fn

    def __hash__(self) -> int:
        return hash((CallableSchedule, id(self.fn)))

    def __repr__(self) -> str:
        return f"CallableSchedule({self.fn!r})"


# --------------------------------------------------------------------------
# The variational-vocabulary ramp: KL weight and learning rate together.
# --------------------------------------------------------------------------


@_register
class VocabularyRamp:
    """KL weight and learning rate of variational vocabulary selection.

    Build it with `vocabulary_ramp(...)`. Calling it returns the pair
    `(weight_decay, learning_rate)`; the two halves are ordinary schedules in
    `.weight_decay` and `.learning_rate`.

    >>> ramp = VocabularyRamp(1e-6, 1e-4, start_epoch=1, total_epochs=4,
    ...                       learning_rate=1e-3)
    >>> ramp(0)
    (1e-06, 0.001)
    """

    _owner = "vocabulary_ramp()"

    def __init__(
        self,
        small_weight: float,
        large_weight: float,
        start_epoch: int,
        total_epochs: int,
        learning_rate: float,
        final_learning_rate: float | None = None,
    ):
        owner = self._owner
        start_epoch = _check_count("start_epoch", start_epoch, owner)
        total_epochs = _check_count("total_epochs", total_epochs, owner, 2)
        last_epoch = total_epochs - 1
        if start_epoch >= last_epoch:
            raise ValueError(
                f"{owner} received start_epoch={start_epoch} with "
                f"total_epochs={total_epochs}; expected start_epoch < "
                f"total_epochs - 1 = {last_epoch} so that the ramp spans at "
                "least one epoch. Lower start_epoch or train longer (or use "
                "constant() for a fixed weight)."
            )
        hint = (
            "The KL weight ramps geometrically (linearly in log space), so "
            "both weights must be positive; the reference uses about "
            "1 / num_train_examples."
        )
        small_weight = _check_positive("small_weight", small_weight, owner, hint)
        large_weight = _check_positive("large_weight", large_weight, owner, hint)
        learning_rate = _check_positive(
            "learning_rate", learning_rate, owner, "Pass e.g. 1e-3."
        )
        if final_learning_rate is not None:
            final_learning_rate = _check_positive(
                "final_learning_rate",
                final_learning_rate,
                owner,
                "Pass e.g. 1e-4, or None to keep learning_rate.",
            )
        ramp_epochs = last_epoch - start_epoch
        object.__setattr__(self, "_config", {
            "small_weight": small_weight,
            "large_weight": large_weight,
            "start_epoch": start_epoch,
            "total_epochs": total_epochs,
            "learning_rate": learning_rate,
            "final_learning_rate": final_learning_rate,
        })
        object.__setattr__(self, "weight_decay", GeometricWarmup(
            final_value=large_weight,
            warmup_epochs=ramp_epochs,
            initial_value=small_weight,
            start_epoch=start_epoch,
        ))
        object.__setattr__(self, "learning_rate", LinearWarmup(
            final_value=(
                learning_rate if final_learning_rate is None
                else final_learning_rate
            ),
            warmup_epochs=ramp_epochs,
            initial_value=learning_rate,
            start_epoch=start_epoch,
        ))

    def __call__(self, epoch: int) -> tuple[float, float]:
        """Returns `(weight_decay, learning_rate)` at `epoch`."""
        return self.weight_decay(epoch), self.learning_rate(epoch)

    def get_config(self) -> dict:
        """Returns the constructor's keyword arguments."""
        return dict(self._config)

    @classmethod
    def from_config(cls, config: dict) -> "VocabularyRamp":
        """Rebuilds the ramp from `get_config()`'s output."""
        return cls(**config)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"VocabularyRamp is immutable: cannot set {name!r}. Build a new "
            "ramp with the changed argument instead."
        )

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return self._config == other._config

    def __hash__(self) -> int:
        return hash((VocabularyRamp, tuple(sorted(self._config.items()))))

    def __repr__(self) -> str:
        arguments = ", ".join(f"{k}={v!r}" for k, v in self._config.items())
        return f"VocabularyRamp({arguments})"


# --------------------------------------------------------------------------
# Factories: the names users type.
# --------------------------------------------------------------------------


def constant(value: float) -> Schedule:
    """The same `value` at every epoch.

    >>> constant(0.1)(0), constant(0.1)(99)
    (0.1, 0.1)
    """
    return Constant(value)


def linear_warmup(
    final_value: float,
    warmup_epochs: int,
    initial_value: float = 0.0,
    start_epoch: int = 0,
) -> Schedule:
    """`initial_value` until `start_epoch`, then linear to `final_value`.

    The value is `initial_value` at every epoch <= `start_epoch`, reaches
    `final_value` exactly at `start_epoch + warmup_epochs`, and stays there.
    `warmup_epochs=0` is a step from `initial_value` to `final_value` at
    `start_epoch`.

    >>> warmup = linear_warmup(1.0, warmup_epochs=2, start_epoch=1)
    >>> [warmup(epoch) for epoch in range(5)]
    [0.0, 0.0, 0.5, 1.0, 1.0]
    """
    return LinearWarmup(final_value, warmup_epochs, initial_value, start_epoch)


def cubic(
    final_value: float,
    warmup_epochs: int,
    initial_value: float = 0.0,
    start_epoch: int = 0,
) -> Schedule:
    """Like `linear_warmup`, but `initial + (final - initial) * t**3`.

    `t = (epoch - start_epoch) / warmup_epochs`, clipped to [0, 1]: slow at
    first, steep at the end.

    >>> ramp = cubic(8.0, warmup_epochs=2)
    >>> [ramp(epoch) for epoch in range(4)]
    [0.0, 1.0, 8.0, 8.0]
    """
    return Cubic(final_value, warmup_epochs, initial_value, start_epoch)


def geometric_warmup(
    final_value: float,
    warmup_epochs: int,
    initial_value: float,
    start_epoch: int = 0,
) -> Schedule:
    """Like `linear_warmup`, but linear in log space (both ends > 0).

    `value = initial * (final / initial) ** t` with
    `t = (epoch - start_epoch) / warmup_epochs` clipped to [0, 1]; the ends
    are exact. Suited to weights that span orders of magnitude.

    >>> ramp = geometric_warmup(1e-4, warmup_epochs=2, initial_value=1e-6)
    >>> [round(ramp(epoch), 12) for epoch in range(4)]
    [1e-06, 1e-05, 0.0001, 0.0001]
    """
    return GeometricWarmup(final_value, warmup_epochs, initial_value, start_epoch)


def cyclical(
    max_value: float,
    total_epochs: int,
    cycles: int = 4,
    ratio: float = 0.5,
    min_value: float = 0.0,
) -> Schedule:
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
    return Cyclical(max_value, total_epochs, cycles, ratio, min_value)


def step_decay(initial_value: float, decay_rate: float, step_epochs: int) -> Schedule:
    """`initial_value * decay_rate ** floor(epoch / step_epochs)`.

    >>> decay = step_decay(1.0, decay_rate=0.5, step_epochs=2)
    >>> [decay(epoch) for epoch in range(5)]
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """
    return StepDecay(initial_value, decay_rate, step_epochs)


def exponential_decay(initial_value: float, decay_rate: float) -> Schedule:
    """`initial_value * decay_rate ** epoch`.

    >>> decay = exponential_decay(2.0, decay_rate=0.5)
    >>> [decay(epoch) for epoch in range(4)]
    [2.0, 1.0, 0.5, 0.25]
    """
    return ExponentialDecay(initial_value, decay_rate)


def vocabulary_ramp(
    small_weight: float,
    large_weight: float,
    start_epoch: int,
    total_epochs: int,
    learning_rate: float,
    final_learning_rate: float | None = None,
) -> VocabularyRamp:
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

    Returns a `VocabularyRamp`: `ramp(epoch)` gives
    `(weight_decay, learning_rate)`; pass the halves to a model as
    `loss_weights={"kl": ramp.weight_decay}` and
    `learning_rate=ramp.learning_rate`.

    >>> ramp = vocabulary_ramp(1e-6, 1e-4, start_epoch=1, total_epochs=4,
    ...                        learning_rate=1e-3, final_learning_rate=4e-4)
    >>> [(round(w, 12), round(lr, 12)) for w, lr in map(ramp, range(5))]
    [(1e-06, 0.001), (1e-06, 0.001), (1e-05, 0.0007), (0.0001, 0.0004), (0.0001, 0.0004)]
    >>> ramp.weight_decay(3)
    0.0001
    """
    return VocabularyRamp(
        small_weight,
        large_weight,
        start_epoch,
        total_epochs,
        learning_rate,
        final_learning_rate,
    )


def as_schedule(value: Any) -> Schedule:
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
