"""Tests for vtrain.schedules: exact values, purity, serialisation, errors."""

import copy
import json
import math
import pickle
import re

import keras
import numpy as np
import pytest

from vtrain import schedules as vs


def values(schedule, epochs):
    return [schedule(epoch) for epoch in epochs]


# --------------------------------------------------------------------------
# Values.
# --------------------------------------------------------------------------


def test_constant_is_the_same_at_every_epoch():
    assert values(vs.constant(0.3), [0, 1, 1000]) == [0.3, 0.3, 0.3]
    assert isinstance(vs.constant(2)(0), float)


def test_linear_warmup_ends_and_neighbours():
    # 0.5 until epoch 2, then +0.25 per epoch, 1.5 exactly at epoch 2 + 4.
    warmup = vs.linear_warmup(1.5, warmup_epochs=4, initial_value=0.5, start_epoch=2)
    assert values(warmup, range(9)) == [0.5, 0.5, 0.5, 0.75, 1.0, 1.25, 1.5, 1.5, 1.5]


def test_linear_warmup_reaches_final_value_exactly():
    # 0.1 + (0.3 - 0.1) * 1.0 == 0.30000000000000004 in floating point.
    warmup = vs.linear_warmup(0.3, warmup_epochs=3, initial_value=0.1)
    assert warmup(3) == 0.3
    assert warmup(0) == 0.1


def test_linear_warmup_with_zero_epochs_is_a_step_at_start():
    step = vs.linear_warmup(1.0, warmup_epochs=0, start_epoch=3)
    assert values(step, [0, 2, 3, 4]) == [0.0, 0.0, 1.0, 1.0]


def test_linear_warmup_can_decrease():
    cooldown = vs.linear_warmup(0.0, warmup_epochs=2, initial_value=1.0)
    assert values(cooldown, range(4)) == [1.0, 0.5, 0.0, 0.0]


def test_cubic_ends_and_neighbours():
    # t = (epoch - 1) / 3; value = 1 + 26 * t**3.
    ramp = vs.cubic(27.0, warmup_epochs=3, initial_value=1.0, start_epoch=1)
    expected = [1.0, 1.0, 1.0 + 26 / 27, 1.0 + 26 * 8 / 27, 27.0, 27.0]
    assert values(ramp, range(6)) == pytest.approx(expected, rel=1e-15)
    assert ramp(1) == 1.0 and ramp(4) == 27.0


def test_geometric_warmup_is_linear_in_log_space():
    ramp = vs.geometric_warmup(1e-3, warmup_epochs=3, initial_value=1e-6, start_epoch=1)
    assert ramp(0) == 1e-6 and ramp(1) == 1e-6
    assert ramp(2) == pytest.approx(1e-5, rel=1e-12)
    assert ramp(3) == pytest.approx(1e-4, rel=1e-12)
    assert ramp(4) == 1e-3 and ramp(5) == 1e-3


def test_cyclical_at_cycle_boundaries():
    # 12 epochs, 3 cycles of 4, rising over the first 2 epochs of each.
    anneal = vs.cyclical(1.0, total_epochs=12, cycles=3, ratio=0.5)
    assert values(anneal, range(13)) == [
        0.0,
        0.5,
        1.0,
        1.0,
        0.0,
        0.5,
        1.0,
        1.0,
        0.0,
        0.5,
        1.0,
        1.0,
        1.0,  # past total_epochs: stays at max_value
    ]


def test_cyclical_with_min_value_and_full_ratio():
    anneal = vs.cyclical(2.0, total_epochs=8, cycles=2, ratio=1.0, min_value=1.0)
    assert values(anneal, range(8)) == [1.0, 1.25, 1.5, 1.75, 1.0, 1.25, 1.5, 1.75]


def test_cyclical_when_cycles_do_not_divide_epochs():
    # Cycles of 10/3 epochs start at 0, 3.33, 6.67; each rises over 5/3 epochs.
    # Epoch 4 is 2/3 into cycle 1: 0.4. Epoch 7 is 1/3 into cycle 2: 0.2.
    anneal = vs.cyclical(1.0, total_epochs=10, cycles=3, ratio=0.5)
    expected = [0.0, 0.6, 1.0, 1.0, 0.4, 1.0, 1.0, 0.2, 0.8, 1.0]
    assert values(anneal, range(10)) == pytest.approx(expected, abs=1e-15)


def test_cyclical_default_is_four_cycles_half_ramp():
    anneal = vs.cyclical(1.0, total_epochs=16)
    assert [anneal(e) for e in (0, 1, 2, 3, 4, 8, 12, 13)] == [
        0.0,
        0.5,
        1.0,
        1.0,
        0.0,
        0.0,
        0.0,
        0.5,
    ]


def test_step_decay():
    decay = vs.step_decay(2.0, decay_rate=0.5, step_epochs=3)
    assert values(decay, range(8)) == [2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 0.5, 0.5]


def test_exponential_decay():
    decay = vs.exponential_decay(3.0, decay_rate=0.5)
    assert values(decay, range(4)) == [3.0, 1.5, 0.75, 0.375]


def test_decay_rate_above_one_grows():
    assert vs.exponential_decay(1.0, 2.0)(3) == 8.0


@pytest.mark.parametrize(
    "schedule",
    [
        vs.constant(0.1),
        vs.linear_warmup(1.0, 5, 0.1, 2),
        vs.cubic(1.0, 5),
        vs.cyclical(1.0, 20),
        vs.step_decay(1.0, 0.5, 2),
        vs.exponential_decay(1.0, 0.9),
        vs.vocabulary_ramp(1e-6, 1e-4, 2, 10, 1e-3).weight_decay,
    ],
)
def test_schedules_are_pure(schedule):
    forward = values(schedule, range(30))
    backward = values(schedule, reversed(range(30)))[::-1]
    assert forward == backward == values(schedule, range(30))


def test_epoch_may_be_a_numpy_integer_or_integral_float():
    warmup = vs.linear_warmup(1.0, 4)
    assert warmup(np.int64(2)) == warmup(2.0) == warmup(np.array(2)) == 0.5


def test_epoch_may_be_a_keras_variable():
    # vtrain.Model keeps the epoch in a non-trainable variable.
    warmup = vs.linear_warmup(1.0, 4)
    assert warmup(keras.Variable(2, dtype="int64", trainable=False)) == 0.5
    assert warmup(keras.Variable(3.0, trainable=False)) == 0.75
    with pytest.raises(ValueError, match="received epoch=2.5, which is not a whole number"):
        warmup(keras.Variable(2.5, trainable=False))
    with pytest.raises(TypeError, match="received epoch=.* of type ndarray"):
        warmup(np.array([1, 2]))


# --------------------------------------------------------------------------
# The variational-vocabulary ramp.
# --------------------------------------------------------------------------


def test_vocabulary_ramp_weight_and_learning_rate():
    ramp = vs.vocabulary_ramp(
        1e-6,
        1e-3,
        start_epoch=2,
        total_epochs=5,
        learning_rate=1e-3,
        final_learning_rate=1e-4,
    )
    # Epochs 0..2: small weight, initial learning rate.
    for epoch in (0, 1, 2):
        assert ramp(epoch) == (1e-6, 1e-3)
    # Epoch 3 is halfway in log space: sqrt(1e-6 * 1e-3); lr halfway: 5.5e-4.
    weight, rate = ramp(3)
    assert weight == pytest.approx(math.sqrt(1e-9), rel=1e-12)
    assert rate == pytest.approx(5.5e-4, rel=1e-12)
    # The last epoch (total_epochs - 1) reaches the end values exactly.
    assert ramp(4) == (1e-3, 1e-4)
    assert ramp(5) == (1e-3, 1e-4)


def test_vocabulary_ramp_halves_are_schedules():
    ramp = vs.vocabulary_ramp(1e-6, 1e-4, 1, 4, 1e-3)
    assert isinstance(ramp.weight_decay, vs.Schedule)
    assert isinstance(ramp.learning_rate, vs.Schedule)
    for epoch in range(6):
        assert ramp(epoch) == (ramp.weight_decay(epoch), ramp.learning_rate(epoch))
    # final_learning_rate defaults to an unchanged learning rate.
    assert values(ramp.learning_rate, range(6)) == [1e-3] * 6


def test_vocabulary_ramp_has_no_jump_at_start_epoch():
    # The reference used `epoch - small_weight` instead of `epoch - start`:
    # with start_epoch=3 and a tiny small_weight that is progress ~3/6 at the
    # start epoch, so the weight jumped to ~sqrt(small * large) at once.
    small, large, start, total = 1e-6, 1e-2, 3, 10
    ramp = vs.vocabulary_ramp(small, large, start, total, learning_rate=1e-3)
    weights = values(ramp.weight_decay, range(total))
    assert weights[start - 1] == weights[start] == small
    # Each ramp epoch multiplies the weight by the same factor.
    factor = (large / small) ** (1 / (total - 1 - start))
    ratios = [b / a for a, b in zip(weights[start:], weights[start + 1 :])]
    assert ratios == pytest.approx([factor] * (total - 1 - start), rel=1e-9)
    buggy_first_step = small * (large / small) ** ((start - small) / (total - 1 - start))
    assert weights[start] != pytest.approx(buggy_first_step)


def test_vocabulary_ramp_starting_at_zero():
    ramp = vs.vocabulary_ramp(1e-4, 1e-2, start_epoch=0, total_epochs=3, learning_rate=1.0)
    assert ramp.weight_decay(0) == 1e-4
    assert ramp.weight_decay(1) == pytest.approx(1e-3, rel=1e-12)
    assert ramp.weight_decay(2) == 1e-2


# --------------------------------------------------------------------------
# Immutability, equality, repr.
# --------------------------------------------------------------------------


def test_schedules_are_immutable():
    warmup = vs.linear_warmup(1.0, 4)
    with pytest.raises(AttributeError, match="immutable"):
        warmup.final_value = 2.0
    with pytest.raises(AttributeError, match="immutable"):
        del warmup.final_value
    ramp = vs.vocabulary_ramp(1e-6, 1e-4, 1, 4, 1e-3)
    with pytest.raises(AttributeError, match="immutable"):
        ramp.weight_decay = vs.constant(1.0)


def test_equality_and_hash_follow_the_config():
    assert vs.constant(1) == vs.constant(1.0)
    assert hash(vs.constant(1)) == hash(vs.constant(1.0))
    assert vs.linear_warmup(1.0, 4) != vs.linear_warmup(1.0, 5)
    # Same arguments, different shape: not equal.
    assert vs.linear_warmup(1.0, 4) != vs.cubic(1.0, 4)
    assert vs.constant(1.0) != 1.0


def test_repr_shows_the_arguments():
    assert repr(vs.step_decay(1.0, 0.5, 2)) == (
        "StepDecay(initial_value=1.0, decay_rate=0.5, step_epochs=2)"
    )
    assert repr(vs.vocabulary_ramp(1e-6, 1e-4, 1, 4, 1e-3)).startswith(
        "VocabularyRamp(small_weight=1e-06, large_weight=0.0001"
    )


# --------------------------------------------------------------------------
# Serialisation.
# --------------------------------------------------------------------------

ALL_SAVABLE = [
    vs.constant(0.25),
    vs.linear_warmup(1.0, 5, initial_value=0.1, start_epoch=2),
    vs.cubic(2.0, 3, start_epoch=1),
    vs.geometric_warmup(1e-4, 3, initial_value=1e-7, start_epoch=1),
    vs.cyclical(1.0, 10, cycles=3, ratio=0.7, min_value=0.1),
    vs.step_decay(1.0, 0.5, 3),
    vs.exponential_decay(2.0, 0.9),
    vs.vocabulary_ramp(1e-7, 1e-4, 2, 10, 1e-3, 1e-4),
    vs.vocabulary_ramp(1e-7, 1e-4, 2, 10, 1e-3),
]


@pytest.mark.parametrize("schedule", ALL_SAVABLE, ids=repr)
def test_keras_serialisation_round_trip(schedule):
    config = keras.saving.serialize_keras_object(schedule)
    json.dumps(config)  # a .keras file stores the config as JSON
    assert config["registered_name"] == f"vtrain>{type(schedule).__name__}"
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(config)))
    assert type(restored) is type(schedule)
    assert restored == schedule
    assert values(restored, range(12)) == values(schedule, range(12))


@pytest.mark.parametrize("schedule", ALL_SAVABLE, ids=repr)
def test_copy_and_pickle_round_trip(schedule):
    assert copy.deepcopy(schedule) == schedule
    assert pickle.loads(pickle.dumps(schedule)) == schedule


@keras.saving.register_keras_serializable(package="vtrain_tests")
class _ScaledBy(keras.layers.Layer):
    """A layer holding a schedule in its config, as a vtrain model would."""

    def __init__(self, schedule, **kwargs):
        super().__init__(**kwargs)
        self.schedule = vs.as_schedule(schedule)

    def call(self, inputs):
        return inputs * self.schedule(0)

    def get_config(self):
        return {**super().get_config(), "schedule": self.schedule}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = keras.saving.deserialize_keras_object(config["schedule"])
        return cls(**config)


def test_schedule_survives_a_keras_file_round_trip(tmp_path):
    ramp = vs.vocabulary_ramp(1e-6, 1e-4, 1, 5, 1e-3)
    inputs = keras.Input(shape=(2,))
    outputs = _ScaledBy(ramp.weight_decay, name="scaled")(inputs)
    model = keras.Model(inputs, outputs)
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert restored.get_layer("scaled").schedule == ramp.weight_decay


def test_wrapped_callable_refuses_to_serialise_with_a_clear_error():
    wrapped = vs.as_schedule(lambda epoch: 0.5**epoch)
    with pytest.raises(TypeError, match=r"Cannot serialise .*<lambda>.*Expected a vtrain"):
        keras.saving.serialize_keras_object(wrapped)


# --------------------------------------------------------------------------
# as_schedule.
# --------------------------------------------------------------------------


def test_as_schedule_numbers_schedules_and_callables():
    assert vs.as_schedule(2) == vs.constant(2.0)
    assert vs.as_schedule(np.float32(0.5)) == vs.constant(0.5)
    warmup = vs.linear_warmup(1.0, 3)
    assert vs.as_schedule(warmup) is warmup
    wrapped = vs.as_schedule(lambda epoch: 0.5**epoch)
    assert isinstance(wrapped, vs.CallableSchedule)
    assert values(wrapped, range(3)) == [1.0, 0.5, 0.25]


def test_wrapped_callable_validates_epoch_and_return_value():
    wrapped = vs.as_schedule(lambda epoch: "fast")
    with pytest.raises(
        TypeError, match=r"returned 'fast' of type str at epoch 0; expected a float"
    ):
        wrapped(0)
    with pytest.raises(ValueError, match="received epoch=-1"):
        vs.as_schedule(lambda epoch: 1.0)(-1)


def test_as_schedule_rejects_other_objects():
    for bad in ("0.1", None, True, [0.1]):
        with pytest.raises(
            TypeError, match=r"as_schedule\(\) received .*expected a number, a vtrain"
        ):
            vs.as_schedule(bad)


def test_as_schedule_rejects_a_whole_vocabulary_ramp():
    ramp = vs.vocabulary_ramp(1e-6, 1e-4, 1, 4, 1e-3)
    with pytest.raises(TypeError, match="Pass ramp.weight_decay"):
        vs.as_schedule(ramp)


# --------------------------------------------------------------------------
# Errors: what was received, what was expected, how to fix it.
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "epoch, error, message",
    [
        (-1, ValueError, "received epoch=-1; expected a non-negative epoch index"),
        (2.5, ValueError, "received epoch=2.5, which is not a whole number.*int\\(epoch\\)"),
        ("3", TypeError, "received epoch='3' of type str.*int\\(epoch\\)"),
        (True, TypeError, "received epoch=True \\(a bool\\)"),
        (None, TypeError, "received epoch=None of type NoneType"),
    ],
)
def test_bad_epoch_errors(epoch, error, message):
    with pytest.raises(error, match=message):
        vs.linear_warmup(1.0, 4)(epoch)
    with pytest.raises(error, match=message):
        vs.vocabulary_ramp(1e-6, 1e-4, 1, 4, 1e-3)(epoch)


def test_bad_epoch_error_names_the_schedule():
    with pytest.raises(ValueError, match=re.escape("ExponentialDecay(initial_value=1.0")):
        vs.exponential_decay(1.0, 0.5)(-3)


@pytest.mark.parametrize(
    "build, error, message",
    [
        (
            lambda: vs.constant("a"),
            TypeError,
            r"constant\(\) received value='a' of type str; expected a real number",
        ),
        (
            lambda: vs.constant(float("nan")),
            ValueError,
            r"constant\(\) received value=nan; expected a finite number",
        ),
        (
            lambda: vs.linear_warmup(1.0, -1),
            ValueError,
            r"linear_warmup\(\) received warmup_epochs=-1; expected an integer >= 0\. Pass warmup_epochs=0 or more",
        ),
        (
            lambda: vs.linear_warmup(1.0, 2.5),
            TypeError,
            r"linear_warmup\(\) received warmup_epochs=2.5 of type float; expected an integer",
        ),
        (
            lambda: vs.linear_warmup(1.0, 2, start_epoch=-2),
            ValueError,
            r"linear_warmup\(\) received start_epoch=-2; expected an integer >= 0",
        ),
        (lambda: vs.cubic(1.0, -3), ValueError, r"cubic\(\) received warmup_epochs=-3"),
        (
            lambda: vs.geometric_warmup(1.0, 2, initial_value=0.0),
            ValueError,
            r"geometric_warmup\(\) received initial_value=0.0; expected a value > 0.*use linear_warmup\(\)",
        ),
        (
            lambda: vs.cyclical(1.0, 10, cycles=0),
            ValueError,
            r"cyclical\(\) received cycles=0; expected an integer >= 1",
        ),
        (
            lambda: vs.cyclical(1.0, 3, cycles=4),
            ValueError,
            r"cyclical\(\) received cycles=4 with total_epochs=3; expected cycles <= total_epochs",
        ),
        (
            lambda: vs.cyclical(1.0, 10, ratio=0.0),
            ValueError,
            r"cyclical\(\) received ratio=0.0; expected 0 < ratio <= 1",
        ),
        (
            lambda: vs.cyclical(1.0, 10, ratio=1.5),
            ValueError,
            r"cyclical\(\) received ratio=1.5; expected 0 < ratio <= 1",
        ),
        (
            lambda: vs.cyclical(1.0, 0),
            ValueError,
            r"cyclical\(\) received total_epochs=0; expected an integer >= 1",
        ),
        (
            lambda: vs.step_decay(1.0, 0.0, 2),
            ValueError,
            r"step_decay\(\) received decay_rate=0.0; expected a value > 0. .*0.5 to halve",
        ),
        (
            lambda: vs.step_decay(1.0, 0.5, 0),
            ValueError,
            r"step_decay\(\) received step_epochs=0; expected an integer >= 1",
        ),
        (
            lambda: vs.exponential_decay(1.0, -0.9),
            ValueError,
            r"exponential_decay\(\) received decay_rate=-0.9; expected a value > 0",
        ),
        (
            lambda: vs.vocabulary_ramp(0.0, 1e-4, 1, 4, 1e-3),
            ValueError,
            r"vocabulary_ramp\(\) received small_weight=0.0; expected a value > 0. .*geometrically",
        ),
        (
            lambda: vs.vocabulary_ramp(1e-6, -1.0, 1, 4, 1e-3),
            ValueError,
            r"vocabulary_ramp\(\) received large_weight=-1.0; expected a value > 0",
        ),
        (
            lambda: vs.vocabulary_ramp(1e-6, 1e-4, -1, 4, 1e-3),
            ValueError,
            r"vocabulary_ramp\(\) received start_epoch=-1; expected an integer >= 0",
        ),
        (
            lambda: vs.vocabulary_ramp(1e-6, 1e-4, 3, 4, 1e-3),
            ValueError,
            r"vocabulary_ramp\(\) received start_epoch=3 with total_epochs=4; expected "
            r"start_epoch < total_epochs - 1 = 3.*Lower start_epoch or train longer",
        ),
        (
            lambda: vs.vocabulary_ramp(1e-6, 1e-4, 0, 1, 1e-3),
            ValueError,
            r"vocabulary_ramp\(\) received total_epochs=1; expected an integer >= 2",
        ),
        (
            lambda: vs.vocabulary_ramp(1e-6, 1e-4, 1, 4, 0.0),
            ValueError,
            r"vocabulary_ramp\(\) received learning_rate=0.0; expected a value > 0",
        ),
        (
            lambda: vs.vocabulary_ramp(1e-6, 1e-4, 1, 4, 1e-3, -1e-4),
            ValueError,
            r"vocabulary_ramp\(\) received final_learning_rate=-0.0001; expected a value > 0.*or None",
        ),
        (
            lambda: vs.CallableSchedule(3),
            TypeError,
            r"CallableSchedule received 3 of type int; expected a callable",
        ),
    ],
)
def test_argument_errors(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_base_class_says_what_to_implement():
    class Incomplete(vs.Schedule):
        pass

    with pytest.raises(NotImplementedError, match=r"must implement value_at\(epoch\)"):
        Incomplete()(0)
    with pytest.raises(NotImplementedError, match=r"must implement get_config\(\)"):
        Incomplete().get_config()


# --------------------------------------------------------------------------
# Compatibility: configs written by earlier versions, factory arguments.
# --------------------------------------------------------------------------

# Written by `keras.saving.serialize_keras_object` with the pre-dataclass
# schedules (commit bfb7793), with the values they gave at epochs 0..5.
SAVED_BEFORE = [
    ("Constant", {"value": 0.25}, [0.25] * 6),
    (
        "LinearWarmup",
        {"final_value": 1.5, "initial_value": 0.5, "start_epoch": 2, "warmup_epochs": 4},
        [0.5, 0.5, 0.5, 0.75, 1.0, 1.25],
    ),
    (
        "Cubic",
        {"final_value": 2.0, "initial_value": 0.0, "start_epoch": 1, "warmup_epochs": 3},
        [0.0, 0.0, 0.07407407407407406, 0.5925925925925924, 2.0, 2.0],
    ),
    (
        "GeometricWarmup",
        {"final_value": 0.001, "initial_value": 1e-06, "start_epoch": 1, "warmup_epochs": 3},
        [1e-06, 1e-06, 9.999999999999997e-06, 9.999999999999998e-05, 0.001, 0.001],
    ),
    (
        "Cyclical",
        {"cycles": 3, "max_value": 1.0, "min_value": 0.1, "ratio": 0.7, "total_epochs": 10},
        [0.1, 0.48571428571428565, 0.8714285714285713, 1.0, 0.3571428571428571, 0.7428571428571429],
    ),
    (
        "StepDecay",
        {"decay_rate": 0.5, "initial_value": 2.0, "step_epochs": 3},
        [2.0, 2.0, 2.0, 1.0, 1.0, 1.0],
    ),
    (
        "ExponentialDecay",
        {"decay_rate": 0.5, "initial_value": 3.0},
        [3.0, 1.5, 0.75, 0.375, 0.1875, 0.09375],
    ),
    (
        "VocabularyRamp",
        {
            "final_learning_rate": 0.0001,
            "large_weight": 0.001,
            "learning_rate": 0.001,
            "small_weight": 1e-06,
            "start_epoch": 2,
            "total_epochs": 5,
        },
        [(1e-06, 0.001)] * 3
        + [(3.1622776601683795e-05, 0.00055), (0.001, 0.0001), (0.001, 0.0001)],
    ),
    (
        "VocabularyRamp",
        {
            "final_learning_rate": None,
            "large_weight": 0.0001,
            "learning_rate": 0.001,
            "small_weight": 1e-07,
            "start_epoch": 2,
            "total_epochs": 10,
        },
        [(1e-07, 0.001)] * 3
        + [
            (2.6826957952797254e-07, 0.001),
            (7.196856730011519e-07, 0.001),
            (1.9306977288832498e-06, 0.001),
        ],
    ),
]


@pytest.mark.parametrize("class_name, config, expected", SAVED_BEFORE, ids=lambda x: str(x)[:20])
def test_configs_saved_by_earlier_versions_load_unchanged(class_name, config, expected):
    saved = {
        "module": "vtrain.schedules",
        "class_name": class_name,
        "config": config,
        "registered_name": f"vtrain>{class_name}",
    }
    restored = keras.saving.deserialize_keras_object(saved)
    assert type(restored) is getattr(vs, class_name)
    assert values(restored, range(6)) == expected
    # Saving it again writes the same keys and numbers.
    assert keras.saving.serialize_keras_object(restored) == saved


@pytest.mark.parametrize("schedule", ALL_SAVABLE, ids=repr)
def test_config_keys_are_the_factory_arguments(schedule):
    factory = getattr(vs, re.sub(r"(?<!^)(?=[A-Z])", "_", type(schedule).__name__).lower())
    config = schedule.get_config()
    assert factory(**config) == schedule
    assert factory(*config.values()) == schedule  # positional order unchanged too


def test_vocabulary_ramp_halves_cannot_be_deleted():
    ramp = vs.vocabulary_ramp(1e-6, 1e-4, 1, 4, 1e-3)
    with pytest.raises(AttributeError, match="immutable"):
        del ramp.weight_decay
    with pytest.raises(
        AttributeError,
        match="VocabularyRamp is immutable: cannot set 'small_weight'. Build a new ramp",
    ):
        ramp.small_weight = 1.0
