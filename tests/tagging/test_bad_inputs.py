"""Every row of docs/reliability.md's bad-input table: the message, and no partial file.

Each test gives `train_and_evaluate` (or the launcher, for flag parsing) one
bad input and asserts the message says what was received, what was
expected and how to fix it, and that the workdir holds no file afterwards.
"""

import json
import math
import os

import pytest

from tests import runs
from vtrain.tagging import train
from vtrain.tagging.data import debtags, pipeline
from vtrain.tagging.data.loaders import DataError

WORDS = "editor text fast small tool web server mail client image".split()


def record(i, **fields):
    example = {
        "id": f"pkg{i}",
        "text": f"{WORDS[i % 10]} {WORDS[(i + 3) % 10]} tool",
        "tags": [f"t{i % 2}"],
    }
    return json.dumps({**example, **fields})


def write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def good_file(tmp_path):
    return write(tmp_path / "good.jsonl", [record(i) for i in range(60)])


@pytest.fixture
def config(good_file):
    config = runs.load_module(runs.TINY).get_config()
    config.data.path = str(good_file)
    config.data.min_tag_train_uses = 1
    config.data.min_word_count = 1
    config.data.batch_size = 8
    return config


def fails(config, workdir, error=train.ConfigError):
    """Runs the launcher's entry point; returns the message of `error`."""
    with pytest.raises(error) as raised:
        train.train_and_evaluate(config, str(workdir))
    assert not os.path.isdir(workdir) or runs.files_under(workdir) == []
    return str(raised.value)


def test_missing_data_file(config, tmp_path):
    config.data.path = str(tmp_path / "missing.jsonl")
    assert fails(config, tmp_path / "run") == (
        f"Invalid value for --config.data.path: received '{tmp_path}/missing.jsonl'. "
        "Expected an existing JSONL, JSON or TSV file with fields text and tags (or "
        '"" for the bundled dataset). The file was not found (relative paths start '
        f"in {os.getcwd()})."
    )


def test_malformed_json_names_the_line(config, tmp_path):
    config.data.path = str(
        write(tmp_path / "bad.jsonl", [record(0), record(1), '{"text": "vim", "tags": ['])
    )
    message = fails(config, tmp_path / "run", DataError)
    assert message.startswith(
        f"Invalid data in '{config.data.path}' line 3: malformed JSON (Expecting value: column 26)."
    )
    assert 'Expected one JSON object per line with fields "text"' in message
    assert message.endswith("Fix the line, or check that each JSON object is on one line.")


def test_empty_text(config, tmp_path):
    config.data.path = str(write(tmp_path / "bad.jsonl", [record(0), record(1, text=" ")]))
    message = fails(config, tmp_path / "run", DataError)
    assert message.startswith(f"Invalid data in '{config.data.path}' line 2: empty text.")
    assert "Expected one JSON object per line" in message


def test_example_with_an_empty_tag_list(config, tmp_path):
    config.data.path = str(write(tmp_path / "bad.jsonl", [record(0), record(1, tags=[])]))
    message = fails(config, tmp_path / "run", DataError)
    assert message.startswith(f"Invalid data in '{config.data.path}' line 2: empty tag list.")


def test_example_with_no_known_tag_is_dropped(good_file, tmp_path):
    # Tags with fewer than min_tag_train_uses training uses are unknown; an
    # example left with none has nothing to predict and is dropped.
    extra = next(i for i in range(60, 100) if debtags.split_of(f"pkg{i}") != "train")
    lines = good_file.read_text().splitlines() + [record(extra, tags=["never-in-train"])]
    path = write(tmp_path / "extra.jsonl", lines)
    sizes = [
        sum(len(split) for split in (s["train"], s["validation"], s["test"]))
        for s in (debtags.load_splits(str(f), 1) for f in (good_file, path))
    ]
    assert sizes[1] == sizes[0] == 60


def test_a_split_left_empty_by_unknown_tags(config, tmp_path):
    # Only test examples carry t1, which no training example has: the test
    # split ends up empty.
    lines = [
        record(i, tags=["t1" if debtags.split_of(f"pkg{i}") == "test" else "t0"]) for i in range(60)
    ]
    config.data.path = str(write(tmp_path / "bad.jsonl", lines))
    assert fails(config, tmp_path / "run") == (
        f"Cannot build the data of --config.data: The test split of {config.data.path} "
        "is empty after keeping tags with at least 1 training uses. Expected examples "
        "in every split (80/10/10 by a hash of the group, package or id). Use more data or a "
        "smaller min_tag_train_uses."
    )


def test_dataset_of_another_schema(config, tmp_path):
    config.data.path = str(
        write(tmp_path / "other.jsonl", ['{"title": "vim", "labels": ["editor"]}'])
    )
    assert fails(config, tmp_path / "run", DataError) == (
        f'Invalid data in \'{config.data.path}\' line 1: missing field "text", "tags" '
        '(fields found: "title", "labels"). Expected one JSON object per line with '
        'fields "text" (string) and "tags" (list of strings, or a comma-separated '
        'string). Rename the fields of your data to "text" and "tags".'
    )


def test_data_file_of_an_unknown_format(config, tmp_path):
    config.data.path = str(write(tmp_path / "data.csv", ["text,tags", "vim,editor"]))
    message = fails(config, tmp_path / "run", DataError)
    assert message.startswith(
        f"Invalid data in '{config.data.path}': unknown file "
        "extension (.csv). Expected one of .jsonl, .json, .tsv"
    )
    assert message.endswith(
        "Convert it: save it as .tsv (text<TAB>tag1,tag2) or as JSON lines (.jsonl)."
    )


def test_negative_epochs(config, tmp_path):
    config.train.num_epochs = -1
    assert fails(config, tmp_path / "run") == (
        "Invalid value for --config.train.num_epochs: received -1. Expected an integer >= 1."
    )


def test_batch_larger_than_the_data(config, tmp_path):
    config.data.batch_size = 1000
    message = fails(config, tmp_path / "run")
    assert message.startswith(
        "Invalid value for --config.data.batch_size: received 1000. Expected at most "
        "the number of training examples, 49. A larger batch makes every epoch a "
        "single step on all the data."
    )
    assert message.endswith(
        "Lower --config.data.batch_size, or use more data "
        "(--config.data.max_train_examples=0 uses all)."
    )


def test_vocabulary_cap_too_small(config, tmp_path):
    config.data.max_vocabulary_size = 2  # 0 means no cap, see the next test
    assert fails(config, tmp_path / "run") == (
        "Cannot build the data of --config.data: Invalid max_vocabulary_size: "
        "received 2. Expected 0 (no cap) or at least 3 (padding, [UNK] and one word)."
    )


def test_empty_vocabulary(config, tmp_path):
    config.data.min_word_count = 10_000
    message = fails(config, tmp_path / "run")
    assert message.startswith(
        "Cannot build the data of --config.data: No word occurs 10000 or more times "
        "in the 49 training texts"
    )
    assert message.endswith(
        "so the vocabulary would be empty. Use a smaller min_word_count or more data."
    )


def test_vocabulary_size_zero_means_no_cap(good_file):
    data = pipeline.load_tag_data(
        str(good_file), max_vocabulary_size=0, min_word_count=1, min_tag_train_uses=1
    )
    assert data.vocabulary_size == 2 + len(WORDS)  # padding, [UNK], every word


@pytest.mark.parametrize("threshold", [math.nan, math.inf])
def test_threshold_not_finite(config, tmp_path, threshold):
    config.model.threshold = threshold
    assert fails(config, tmp_path / "run") == (
        f"Invalid value for --config.model.threshold: received {threshold!r}. Expected "
        "a finite number: the log_alpha at or above which a word is dropped (3.0 is "
        "the usual value)."
    )


# Found by the override fuzz test (test_config_fuzz.py): each passed the
# checks before, then trained NaN or stopped in a NumPy traceback.
@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("train.learning_rate", math.nan, "a positive finite number."),
        ("train.learning_rate", math.inf, "a positive finite number."),
        ("train.weight_decay_scale", math.nan, "a finite number >= 0 (0 turns the KL term off)."),
        ("seed", -1, "an integer from 0 to 2**32 - 1 (NumPy's seed range)."),
        ("seed", 2**32, "an integer from 0 to 2**32 - 1 (NumPy's seed range)."),
        (
            "train.learning_rate_multipliers.log_alpha",
            math.nan,
            "a positive finite factor on the learning rate (1 = none).",
        ),
        (
            "train.learning_rate_multipliers.log_alpha",
            -2.0,
            "a positive finite factor on the learning rate (1 = none).",
        ),
    ],
)
def test_non_finite_numbers_and_seeds_out_of_range(config, tmp_path, field, value, expected):
    section = config
    *path, name = field.split(".")
    for key in path:
        section = section[key]
    section[name] = value
    assert fails(config, tmp_path / "run") == (
        f"Invalid value for --config.{field}: received {value!r}. Expected {expected}"
    )


def test_misspelled_strategy(config, tmp_path):
    config.strategy = "mirored"
    assert fails(config, tmp_path / "run") == (
        "Invalid value for --config.strategy: received 'mirored'. Expected one of "
        "none, mirrored, multi_worker. Did you mean 'mirrored'?"
    )


def test_workdir_that_is_a_file(config, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    for workdir in (path, path / "run"):
        message = fails(config, workdir)
        assert message.startswith(
            f"Invalid value for --workdir: received '{workdir}'. "
            "Expected a folder (existing or new), but "
        )
        assert message.endswith("is a file. Pass a folder path, e.g. runs/my-run.")
    assert path.read_text() == "mine"


def read_only_message(workdir):
    return (
        f"Invalid value for --workdir: received '{workdir}'. Expected a folder this "
        "user can write to, but it is read-only. Make it writable (chmod u+w), or "
        "pass another --workdir."
    )


def test_read_only_workdir(config, tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    workdir.chmod(0o555)
    try:
        if os.access(workdir, os.W_OK):
            pytest.skip(
                "running as root: chmod does not make a folder read-only for "
                "root (its writes succeed, so vtrain rightly trains there); "
                "test_read_only_workdir_simulated checks the message"
            )
        assert fails(config, workdir) == read_only_message(workdir)
    finally:
        workdir.chmod(0o755)


def test_read_only_workdir_simulated(config, tmp_path, monkeypatch):
    # What a read-only folder looks like to os.access, as root would not see it.
    workdir = tmp_path / "run"
    workdir.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os,
        "access",
        lambda path, mode: False if os.fspath(path) == str(workdir) else real_access(path, mode),
    )
    assert fails(config, workdir) == read_only_message(workdir)


def test_workdir_inside_a_read_only_folder_simulated(config, tmp_path, monkeypatch):
    workdir = tmp_path / "parent" / "run"
    workdir.parent.mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert fails(config, workdir).endswith(
        f"but '{workdir.parent}', where it would be created, is read-only. Make it "
        "writable (chmod u+w), or pass another --workdir."
    )


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "--config.train.num_epochs=three",
            "Error: invalid value for --config.train.num_epochs: received 'three' (invalid "
            "literal for int() with base 10: 'three'). Expected int, the type of the field "
            "(the config file sets 2). Fix the value, e.g. --config.train.num_epochs=2.",
        ),
        (
            "--config.train.num_epoch=3",
            "Error: unknown config field in --config.train.num_epoch: 'num_epoch'. Did you "
            'mean "num_epochs" instead of "num_epoch"? Configs are locked: an override '
            "cannot add a field; fix its name.",
        ),
        (  # found by test_config_fuzz.py: a KeyError traceback before
            "--config.trian.num_epochs=3",
            "Error: unknown config field in --config.trian.num_epochs: 'trian'. Did you "
            'mean "train" instead of "trian"? Configs are locked: an override cannot add a '
            "field; fix its name.",
        ),
        (  # found by test_config_fuzz.py: a ValueError traceback before
            "--config.train.num-epochs=3",
            "Error: invalid config field name in --config.train.num-epochs: 'num-epochs' is "
            "not a Python name. Expected a dotted path of the config's field names (letters, "
            "digits and _), e.g. --config.train.num_epochs=3.",
        ),
    ],
    ids=["wrong type", "unknown key", "misspelt section", "not a field path"],
)
def test_bad_override(tmp_path, override, message):
    process = runs.launch(f"--config={runs.TINY}", override, f"--workdir={tmp_path / 'run'}")
    assert process.returncode == 1
    assert process.stderr.strip().splitlines()[-1] == message
    assert not (tmp_path / "run").exists()
