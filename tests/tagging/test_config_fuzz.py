"""Fuzzed `--config.*` overrides: each is accepted, or refused with a one-line message.

Hypothesis draws one to three overrides of configs/tiny.py: real field
names, misspelt ones and made-up dotted names, with values of every kind
(numbers of any size, nan, inf, 1e999, words, tuples, empty strings,
Unicode). Each goes through what the launcher does before training:

1. `main.parse_flags` (in a fresh FlagValues): it returns, or exits with
   `Error: unknown config field ...`, `Error: invalid value for ...` or
   absl's `FATAL Flags parsing error: ...`, one line, no traceback;
2. `train.check_config`, `make_strategy`, the model's construction and
   `compile` (`_build_and_compile`, on data built once): a `ConfigError`
   or nothing. A config that passes has finite numbers and a seed that
   `keras.utils.set_random_seed` takes; a refused one also makes
   `train_and_evaluate` fail with the same message, leaving its workdir
   empty.

300 cases, about 10 s.
"""

import math
import os
import tempfile

import keras
import pytest
from absl import flags
from hypothesis import event, given
from hypothesis import strategies as st
from ml_collections import config_flags

from tests import fuzzing, runs
from tests.tagging import tiny_tags
from vtrain.tagging import baseline, main, train

BASE = runs.load_module(runs.TINY).get_config()
FIELDS = sorted(
    f"{section}.{key}" if section != key else key
    for section, value in BASE.items()
    for key in (value.keys() if hasattr(value, "keys") else [section])
) + ["train.learning_rate_multipliers.log_alpha"]
DOCUMENTED_EXIT = (
    "Error: unknown config field in ",
    "Error: invalid config field name in ",
    "Error: invalid value for --",
)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    os.environ.pop("TF_CONFIG", None)  # multi_worker must fail fast, not connect
    return tiny_tags.write(tmp_path_factory.mktemp("data") / "tags.jsonl")


class Built:
    """The TagData models are built on, with a short repr for Hypothesis's reports."""

    def __init__(self, data):
        self.data = data

    def __repr__(self):
        return "<TagData of tiny_tags.write()>"


@pytest.fixture(scope="module")
def data(data_file):
    return Built(train.load_data(config_from([], data_file)))  # TensorFlow is started


def config_from(overrides, data_file):
    argv = [
        "vtrain.main",
        f"--config={runs.TINY}",
        f"--config.data.path={data_file}",
        "--config.data.min_tag_train_uses=2",
        "--config.data.min_word_count=1",
        "--config.data.batch_size=16",
        *overrides,
    ]
    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file(
        "config", str(runs.TINY), flag_values=flag_values, lock_config=True, sys_argv=argv
    )
    main.parse_flags(argv, flag_values=flag_values)
    return flag_values.config


def typo(name):
    return st.integers(0, len(name) - 1).map(lambda i: name[:i] + name[i + 1 :] or "x")


def default_of(name):
    value = BASE
    for key in name.split("."):
        value = value[key]
    return value


generic_values = (
    st.integers(min_value=-(10**20), max_value=10**20).map(str)
    | st.floats(allow_nan=True, allow_infinity=True).map(repr)
    | st.sampled_from(["nan", "inf", "1e999", "True", "None", "", "(1, 2)", "[1]", "{}", " "])
    | fuzzing.unicode_text.map(lambda text: text.replace("\x00", ""))
)
# Names the string fields are checked against, and near misses.
KNOWN = {
    "strategy": ["none", "mirrored", "multi_worker", "Mirrored", "mirored"],
    "model.name": ["pooled", "cnn", "vae", "triplet", "itag", "tfidf", "Pooled"],
    "model.pooling": ["mean", "max", "sum", "attention", "Mean"],
    "train.optimizer": ["lazy_adam", "adam", "sgd", "rmsprop", "adamw", "lazy-adam"],
}


def values_for(name):
    """Values of the field's own type, edge cases first; anything for other names."""
    if name not in FIELDS or name == "train.learning_rate_multipliers":
        return generic_values
    default = default_of(name)
    if isinstance(default, bool):
        typed = st.sampled_from(["True", "False", "true", "0", "1", "yes", "maybe"])
    elif isinstance(default, int):
        typed = st.integers(min_value=-(10**12), max_value=10**12).map(str) | st.sampled_from(
            ["0", "-1", "1", str(2**32), str(2**63), "1.5", "1e3"]
        )
    elif isinstance(default, float):
        typed = st.floats(allow_nan=True, allow_infinity=True).map(repr) | st.sampled_from(
            ["nan", "inf", "-inf", "1e999", "-0.0", "0", "1e-320", "3"]
        )
    else:
        typed = st.sampled_from(KNOWN.get(name, [""])) | fuzzing.unicode_text.map(
            lambda text: text.replace("\x00", "")
        )
    return typed | typed | generic_values


names = (
    st.sampled_from(FIELDS)
    | st.sampled_from(FIELDS)
    | st.sampled_from(FIELDS).flatmap(typo)
    | st.lists(fuzzing.words.map(lambda w: w.strip(" ,.") or "x"), min_size=1, max_size=3).map(
        ".".join
    )
)
overrides = st.lists(
    names.flatmap(lambda name: values_for(name).map(f"--config.{name}={{}}".format)),
    min_size=1,
    max_size=2,
)


def assert_accepted(config):
    for section in ("train", "model", "data"):
        for key, value in config[section].items():
            if isinstance(value, float):
                assert math.isfinite(value), f"{section}.{key} = {value}"
    for factor in config.train.learning_rate_multipliers.values():
        assert math.isfinite(factor) and factor > 0, factor
    keras.utils.set_random_seed(config.seed)


@fuzzing.fuzz_settings(max_examples=300)
@given(overrides)
def test_an_override_is_accepted_or_refused_in_one_line(data_file, data, drawn):
    try:
        config = config_from(drawn, data_file)
    except SystemExit as exit:
        message = str(exit.code)
        assert message.startswith(DOCUMENTED_EXIT) or message.startswith(
            "FATAL Flags parsing error: "
        ), message
        assert "Traceback" not in message
        event("refused by the flag parser")
        return
    try:
        strategy = train.make_strategy(config.strategy)
        train.check_config(config)
        if config.model.name == baseline.NAME:
            # The scikit-learn baseline builds no Keras model (train_and_evaluate_tfidf).
            event("accepted: the TF-IDF baseline")
            assert_accepted(config)
            return
        with strategy.scope():
            train._build_and_compile(config, data.data)
    except train.ConfigError as error:
        event("ConfigError")
        if "--config.model" in str(error) and "Cannot build model" in str(error):
            return  # raised after the data is loaded: checked in test_bad_inputs
        with tempfile.TemporaryDirectory() as directory:
            workdir = os.path.join(directory, "run")
            with pytest.raises(train.ConfigError) as raised:
                train.train_and_evaluate(config, workdir)
            assert str(raised.value) == str(error)
            assert not os.path.exists(workdir) or runs.files_under(workdir) == []
        return
    event("accepted")
    assert_accepted(config)
