"""Fuzzed `vtrain.suggest` input: tags for every line, or one SuggestError, nothing half-written.

Hypothesis writes input files of random lines: JSON values of every type,
objects with and without a string "text", unpaired surrogates, NaN and
1e999, random bytes, mixed encodings, a BOM, lines of megabytes, nesting
200,000 deep. `read_records` (250 cases) returns the objects or raises a
`SuggestError` naming the line ("Invalid input in '<file>' line N:
received ..."); `suggest.main` on a classifier run (30 cases of inputs
shaped like valid ones) exits 0 with one strict-JSON object per input line,
or exits 1 with "Error: ..." and leaves the previous output file as it was.
About 25 s with the run's training.
"""

import contextlib
import io
import json
import math
import os
import tempfile

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from tests import fuzzing
from tests.tagging import tiny_tags
from vtrain.tagging import suggest, train

PREVIOUS = b"previous output\n"


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory):
    data = tiny_tags.write(tmp_path_factory.mktemp("data") / "tags.jsonl")
    workdir = tmp_path_factory.mktemp("runs") / "pooled"
    train.train_and_evaluate(tiny_tags.keras_config(data), str(workdir))
    return workdir


objects = st.fixed_dictionaries(
    {},
    optional={
        "text": fuzzing.any_text | fuzzing.words | fuzzing.json_values,
        "id": fuzzing.json_values,
        "tags": fuzzing.json_values,
        "package": fuzzing.any_text | fuzzing.json_values,
        "": fuzzing.json_values,
    },
)
lines = (
    objects.map(fuzzing.json_line)
    | fuzzing.json_values.map(fuzzing.json_line)
    | fuzzing.any_text
    | fuzzing.deep_nesting
    | st.sampled_from(["", " ", '{"text": "a"', '{"text": "x", "id": NaN}', '{"text": 1e999}'])
)


# Valid lines with unusual content: NUL, BOM, U+2028, astral planes, megabytes.
valid_lines = st.fixed_dictionaries(
    {"text": fuzzing.unicode_text | fuzzing.words | st.just("") | fuzzing.huge_text},
    optional={"id": fuzzing.clean_values, "package": fuzzing.clean_values},
).map(fuzzing.json_line)


@st.composite
def input_files(draw, max_lines=5):
    """The bytes of an input file: valid or hostile lines, in one or several encodings."""
    kind = draw(st.sampled_from(["valid", "valid", "hostile", "hostile", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    line = valid_lines if kind == "valid" else lines | valid_lines
    texts = draw(st.lists(line, min_size=1, max_size=max_lines))
    if kind == "valid" or draw(st.booleans()):
        encodings = ["utf-8"] * len(texts)
    else:
        encodings = draw(
            st.lists(st.sampled_from(fuzzing.ENCODINGS), min_size=len(texts), max_size=len(texts))
        )
    data = b"\n".join(fuzzing.encode(text, code) for text, code in zip(texts, encodings))
    return data + (b"\n" if draw(st.booleans()) else b"")


def strict_json(line):
    """json.loads that refuses NaN and Infinity, which are not JSON."""

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(line, parse_constant=refuse)


def assert_clean(value):
    """Every string encodes as UTF-8 and every number is finite, at any depth."""
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, float):
        assert math.isfinite(value)
    elif isinstance(value, list):
        for item in value:
            assert_clean(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            assert_clean(key)
            assert_clean(item)


def in_file(data):
    directory = tempfile.TemporaryDirectory()
    path = os.path.join(directory.name, "in.jsonl")
    with open(path, "wb") as f:
        f.write(data)
    return directory, path


@fuzzing.fuzz_settings(max_examples=250)
@given(input_files())
def test_input_lines_are_read_or_refused_with_the_line(data):
    directory, path = in_file(data)
    with directory:
        try:
            records = suggest.read_records(path)
        except suggest.SuggestError as error:
            event("SuggestError")
            message = str(error)
            assert message.startswith(
                (f"Invalid input in '{path}' line ", f"Invalid --input: '{path}' is empty.")
            ), message
            assert "Expected" in message, message
            return
        event("read")
        for record in records:
            assert isinstance(record, dict) and isinstance(record["text"], str)
            assert not set(record) & set(suggest.OUTPUT_FIELDS)
            assert_clean(record)


@fuzzing.fuzz_settings(max_examples=30)
@given(data=input_files(max_lines=4))
def test_suggest_writes_every_line_or_nothing(classifier_run, data):
    directory, path = in_file(data)
    with directory:
        output = os.path.join(directory.name, "out.jsonl")
        with open(output, "wb") as f:
            f.write(PREVIOUS)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = suggest.main(
                [f"--workdir={classifier_run}", f"--input={path}", f"--output={output}"]
            )
        err = err.getvalue()
        with open(output, "rb") as f:
            written = f.read()
        if code == 1:
            event("exit 1")
            assert err.startswith("Error: ") and "Traceback" not in err, err
            assert written == PREVIOUS
            return
        event("exit 0")
        assert code == 0, err
        records = suggest.read_records(path)
        text = written.decode("utf-8")
        assert text.splitlines() == text.split("\n")[:-1]  # no other line breaks
        out = [strict_json(line) for line in text.split("\n")[:-1]]
        assert len(out) == len(records)
        for line in out:
            assert len(line["tags"]) == len(line["scores"]) == suggest.K
            assert all(0 <= score <= 1 for score in line["scores"])
