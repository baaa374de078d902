"""Fuzzed data files: each loads, or fails with a DataError / ConfigError as documented.

Hypothesis writes JSON-lines, JSON and TSV files (optionally gzip, whole,
cut short or with a flipped byte) of random records and lines: wrong
types, missing fields, unpaired surrogates, NaN, random bytes, lines in
mixed encodings, lines of megabytes, JSON nested 200,000 deep, valid
examples with bad lines among them. Each file goes through the launcher's
data step (`train.load_checked_data`): it builds the three splits, or it
raises `DataError` ("Invalid data in '<file>' ...: ... Expected ...") or a
documented `ConfigError` (an empty split or vocabulary). A rejected file
also goes through `train_and_evaluate`, which must raise the same error and
leave the workdir empty. 150 cases, about 15 s.
"""

import json
import os
import re
import tempfile

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from tests import fuzzing, runs
from vtrain.tagging import train
from vtrain.tagging.data import loaders

WORDS = "editor text fast small tool web server mail client image".split()
GOOD = [
    {"id": f"pkg{i}", "text": f"{WORDS[i % 10]} {WORDS[(i + 3) % 10]} tool", "tags": [f"t{i % 2}"]}
    for i in range(40)
]
EMPTY_DATA = re.compile(
    r"Cannot build the data of --config\.data: (The (train|validation|test) split of .+ is "
    r"empty after keeping tags with at least 1 training uses\. Expected examples in every "
    r"split|No word occurs 1 or more times in the \d+ training texts)"
)

records = st.fixed_dictionaries(
    {},
    optional={
        "text": fuzzing.words | fuzzing.any_text | fuzzing.json_values,
        "tags": st.lists(fuzzing.words | fuzzing.any_text, max_size=4)
        | fuzzing.words
        | fuzzing.json_values,
        "id": st.integers() | fuzzing.words | fuzzing.json_values,
        "package": fuzzing.any_text | fuzzing.json_values,
        "group": fuzzing.words | fuzzing.any_text | fuzzing.json_values,
        "source": fuzzing.json_values,
    },
)
# Valid in shape, hostile in content: these reach the pipeline.
near_valid = st.fixed_dictionaries(
    {
        "text": fuzzing.words | fuzzing.any_text,
        "tags": st.lists(fuzzing.words | fuzzing.any_text, min_size=1, max_size=3),
    },
    optional={"id": fuzzing.words | fuzzing.any_text, "group": fuzzing.any_text},
)
# Valid, with unusual characters (NUL, BOM, line separators, astral planes).
odd_but_valid = st.fixed_dictionaries(
    {
        "id": st.uuids().map(str),
        "text": st.builds("{} {}".format, st.sampled_from(WORDS), fuzzing.unicode_text),
        "tags": st.lists(st.sampled_from(["t0", "t1"]) | fuzzing.unicode_text, min_size=1),
    }
)
json_lines = (
    near_valid.map(fuzzing.json_line)
    | records.map(fuzzing.json_line)
    | fuzzing.json_values.map(fuzzing.json_line)
)
tsv_lines = st.builds(
    "\t".join,
    st.lists(fuzzing.words | fuzzing.any_text, min_size=1, max_size=4),
)


def good_line(example, extension):
    if extension.startswith(".tsv"):
        return f"{example['text']}\t{','.join(example['tags'])}"
    return json.dumps(example)


@st.composite
def data_files(draw):
    """`(extension, bytes)` of a data file, hostile or not."""
    extension = draw(st.sampled_from([".jsonl", ".json", ".tsv"]))
    mode = draw(
        st.sampled_from(
            ["good and bad"] * 3 + ["good and odd"] * 2 + ["lines", "bytes", "deep", "huge"]
        )
    )
    line = json_lines | tsv_lines | fuzzing.any_text
    if mode == "bytes":
        data = draw(st.binary(max_size=400))
    else:
        if mode == "deep":
            lines = [draw(fuzzing.deep_nesting)]
        elif mode == "huge":
            text = draw(fuzzing.huge_text)
            lines = [good_line({"text": text, "tags": ["t0"]}, extension), text]
        elif mode == "lines":
            lines = draw(st.lists(line, max_size=6))
        else:  # valid examples, and hostile or odd ones among them
            lines = [good_line(example, extension) for example in GOOD]
            if mode == "good and odd":
                others = st.lists(odd_but_valid.map(lambda e: good_line(e, extension)), max_size=4)
            elif extension == ".tsv":
                others = st.lists(tsv_lines | line, max_size=3)
            else:
                others = st.lists(near_valid.map(fuzzing.json_line) | line, max_size=3)
            for other in draw(others):
                lines.insert(draw(st.integers(0, len(lines))), other)
        if extension == ".json" and draw(st.booleans()):  # a whole-file array
            lines = ["[" + ",\n".join(line for line in lines) + "]"]
        if draw(st.integers(0, 9)) < 7:
            encodings = ["utf-8"] * len(lines)
        elif draw(st.booleans()):  # another encoding for the file
            encodings = [draw(st.sampled_from(fuzzing.ENCODINGS))] * len(lines)
        else:  # each line its own
            encodings = draw(
                st.lists(
                    st.sampled_from(fuzzing.ENCODINGS), min_size=len(lines), max_size=len(lines)
                )
            )
        data = b"\n".join(fuzzing.encode(text, code) for text, code in zip(lines, encodings))
    if draw(st.integers(0, 9)) < 3:
        data, extension = draw(fuzzing.gzipped(data)), extension + ".gz"
    return extension, data


def config_for(path):
    config = runs.load_module(runs.TINY).get_config()
    config.data.path = path
    config.data.min_tag_train_uses = 1
    config.data.min_word_count = 1
    config.data.batch_size = 4
    config.data.max_train_examples = 0
    config.data.sequence_length = 8
    return config


def assert_normalised(example):
    assert isinstance(example["text"], str) and example["text"] == example["text"].strip()
    assert example["text"] and example["text"].encode("utf-8")
    tags = example["tags"]
    assert tags == sorted(set(tags)) and all(isinstance(t, str) and t == t.strip() for t in tags)
    assert tags and all(tag and tag.encode("utf-8") for tag in tags)
    for field in ("id", "package"):
        if field in example:
            assert isinstance(example[field], (str, int)) and not isinstance(example[field], bool)
    if "group" in example:
        assert example["group"] and example["group"] == example["group"].strip()


def assert_documented(error, path):
    message = str(error)
    if isinstance(error, loaders.DataError):
        assert message.startswith(f"Invalid data in '{path}'"), message
        assert "Expected" in message, message
    else:
        assert EMPTY_DATA.match(message), message


@fuzzing.fuzz_settings(max_examples=150)
@given(data_files())
def test_a_data_file_loads_or_fails_as_documented(file):
    extension, data = file
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "data" + extension)
        with open(path, "wb") as f:
            f.write(data)
        try:
            examples = loaders.load_file(path)
        except loaders.DataError:
            examples = None
        for example in examples or ():
            assert_normalised(example)
        try:
            train.load_checked_data(config_for(path))
        except (loaders.DataError, train.ConfigError) as error:
            event(type(error).__name__)
            assert examples is not None or isinstance(error, loaders.DataError)
            assert_documented(error, path)
            workdir = os.path.join(directory, "run")
            with pytest.raises(type(error)) as raised:
                train.train_and_evaluate(config_for(path), workdir)
            assert str(raised.value) == str(error)
            assert not os.path.exists(workdir) or runs.files_under(workdir) == []
        else:
            event("loaded")
            assert examples is not None
