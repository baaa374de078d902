"""Tests for vtrain.tagging.data.loaders: every format, and every error message."""

import gzip
import json

import pytest

from vtrain.tagging.data import loaders
from vtrain.tagging.data.loaders import DataError, load_file


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return str(path)


def error_of(path):
    with pytest.raises(DataError) as info:
        load_file(path)
    return str(info.value)


def assert_names(message, path, line, *problems):
    assert f"'{path}'" in message
    if line is not None:
        assert f" line {line}:" in message
    for problem in problems:
        assert problem in message, message


# Formats that load.


def test_jsonl_with_list_and_comma_separated_tags(tmp_path):
    path = write(
        tmp_path,
        "d.jsonl",
        '{"package": "p", "text": " Chess engine ", "tags": ["b", "a", "a"]}\n'
        "\n"
        '{"id": 3, "text": "Editor", "tags": "x, y,,"}\n',
    )
    assert load_file(path) == [
        {"text": "Chess engine", "tags": ["a", "b"], "package": "p"},
        {"text": "Editor", "tags": ["x", "y"], "id": 3},
    ]


def test_jsonl_gz(tmp_path):
    path = tmp_path / "d.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write('{"text": "t", "tags": ["a"], "extra": 1}\n')
    assert load_file(str(path)) == [{"text": "t", "tags": ["a"]}]


def test_json_lines_and_json_array(tmp_path):
    lines = write(tmp_path, "l.json", '{"text": "t", "tags": ["a"]}\n')
    array = write(tmp_path, "a.json", json.dumps([{"text": "t", "tags": ["a"]}], indent=2))
    assert load_file(lines) == load_file(array) == [{"text": "t", "tags": ["a"]}]


def test_tsv_with_and_without_header(tmp_path):
    with_header = write(tmp_path, "h.tsv", "text\ttags\nA web server\tweb::server, role::program\n")
    without = write(tmp_path, "n.tsv", "A web server\tweb::server,role::program\n\n")
    expected = [{"text": "A web server", "tags": ["role::program", "web::server"]}]
    assert load_file(with_header) == load_file(without) == expected


def test_utf8_bom_is_ignored(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "t", "tags": ["a"]}\n')
    assert load_file(str(path)) == [{"text": "t", "tags": ["a"]}]


# Errors: each names the file, the line and the problem.


def test_file_not_found(tmp_path):
    path = str(tmp_path / "missing.jsonl")
    with pytest.raises(FileNotFoundError) as info:
        load_file(path)
    assert isinstance(info.value, DataError)
    assert_names(str(info.value), path, None, "file not found", '"text"', '"tags"')


def test_malformed_json(tmp_path):
    path = write(
        tmp_path, "x.jsonl", '{"text": "a", "tags": ["a"]}\n' * 6 + '{"text": "a" "tags": ["a"]}\n'
    )
    message = error_of(path)
    assert_names(
        message,
        path,
        7,
        "malformed JSON (Expecting ',' delimiter: column 14)",
        'Expected one JSON object per line with fields "text" (string) and "tags"',
    )


def test_csv_content_in_jsonl_file(tmp_path):
    path = write(tmp_path, "x.jsonl", "text,tags\nhello,a\n")
    assert_names(error_of(path), path, 1, "malformed JSON", "looks like CSV")


def test_missing_field_lists_the_fields_found(tmp_path):
    path = write(
        tmp_path, "x.jsonl", '{"text": "t", "tags": ["a"]}\n{"title": "t", "labels": ["a"]}\n'
    )
    assert_names(
        error_of(path), path, 2, 'missing field "text", "tags"', 'fields found: "title", "labels"'
    )


def test_json_value_that_is_not_an_object(tmp_path):
    path = write(tmp_path, "x.jsonl", '["t", ["a"]]\n')
    assert_names(error_of(path), path, 1, "found a list, not a JSON object")


@pytest.mark.parametrize(
    "record, problem",
    [
        ({"text": 5, "tags": ["a"]}, '"text" is a number, not a string'),
        ({"text": "t", "tags": {"a": 1}}, '"tags" is an object, not a list of strings'),
        ({"text": "t", "tags": ["a", 2]}, '"tags" contains a number (2), not a string'),
        ({"text": "t", "tags": ["a"], "id": [1]}, '"id" is a list, not a string or integer'),
    ],
)
def test_wrong_types(tmp_path, record, problem):
    path = write(tmp_path, "x.jsonl", json.dumps(record) + "\n")
    assert_names(error_of(path), path, 1, problem)


def test_empty_text(tmp_path):
    path = write(
        tmp_path, "x.jsonl", '{"text": "t", "tags": ["a"]}\n{"text": "  ", "tags": ["a"]}\n'
    )
    assert_names(error_of(path), path, 2, "empty text")


@pytest.mark.parametrize("tags", [[], "", " , ", [" "]])
def test_empty_tag_list_is_rejected(tmp_path, tags):
    path = write(tmp_path, "x.jsonl", json.dumps({"text": "t", "tags": tags}) + "\n")
    assert_names(error_of(path), path, 1, "empty tag list", "at least one tag")


def test_unknown_extension(tmp_path):
    path = write(tmp_path, "x.csv", "text,tags\nhello,a\n")
    assert_names(
        error_of(path),
        path,
        None,
        "unknown file extension (.csv)",
        ".jsonl, .json, .tsv",
        "Convert it",
    )


@pytest.mark.parametrize("name", ["x.jsonl", "x.tsv", "x.json"])
def test_empty_file(tmp_path, name):
    path = write(tmp_path, name, "\n  \n")
    assert_names(error_of(path), path, None, "the file is empty")


def test_tsv_header_only(tmp_path):
    path = write(tmp_path, "x.tsv", "text\ttags\n")
    assert_names(error_of(path), path, None, "header but no examples")


def test_csv_content_in_tsv_file(tmp_path):
    path = write(tmp_path, "x.tsv", "text\ttags\nhello world,devel::lang:c\n")
    assert_names(
        error_of(path), path, 2, "found 1 tab-separated column", "CSV", "text<TAB>tag1,tag2"
    )


def test_tsv_too_many_columns(tmp_path):
    path = write(tmp_path, "x.tsv", "a\tb\tc\n")
    assert_names(error_of(path), path, 1, "found 3 tab-separated columns", "Replace the tabs")


def test_tsv_empty_tags(tmp_path):
    path = write(tmp_path, "x.tsv", "a text\t \n")
    assert_names(error_of(path), path, 1, "empty tag list")


def test_invalid_utf8(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"text": "t", "tags": ["a"]}\n{"text": "\xff", "tags": ["a"]}\n')
    assert_names(error_of(str(path)), str(path), 2, "not valid UTF-8")


def test_gz_name_on_a_plain_file(tmp_path):
    path = write(tmp_path, "x.jsonl.gz", '{"text": "t", "tags": ["a"]}\n')
    assert_names(error_of(path), path, None, "cannot read the file", "gzip")


def test_json_array_item_errors_name_the_item(tmp_path):
    path = write(tmp_path, "x.json", json.dumps([{"text": "t", "tags": ["a"]}, {"text": "t"}]))
    assert_names(error_of(path), path, None, 'item 2: missing field "tags"')


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)
    assert issubclass(loaders.DataFileNotFoundError, FileNotFoundError)


# The optional "group" field (and "source", kept when it is a string).


def test_group_field_in_jsonl_json_and_tsv(tmp_path):
    jsonl = write(
        tmp_path,
        "g.jsonl",
        '{"package": "libfoo-dev", "text": "t", "tags": ["a"], "group": " foo "}\n'
        '{"package": "bar", "text": "u", "tags": ["a"]}\n',
    )
    assert load_file(jsonl) == [
        {"text": "t", "tags": ["a"], "package": "libfoo-dev", "group": "foo"},
        {"text": "u", "tags": ["a"], "package": "bar"},
    ]
    array = write(tmp_path, "g.json", json.dumps([{"text": "t", "tags": ["a"], "group": "g"}]))
    assert load_file(array) == [{"text": "t", "tags": ["a"], "group": "g"}]
    tsv = write(tmp_path, "g.tsv", "Text\tTags\tGroup\nA web server\tweb::server\tnginx\n")
    assert load_file(tsv) == [{"text": "A web server", "tags": ["web::server"], "group": "nginx"}]


def test_files_without_group_load_as_before(tmp_path):
    path = write(tmp_path, "d.jsonl", '{"id": 1, "text": "t", "tags": ["a"], "x": 2}\n')
    assert load_file(path) == [{"text": "t", "tags": ["a"], "id": 1}]


def test_source_is_kept_when_a_string_and_ignored_otherwise(tmp_path):
    path = write(
        tmp_path,
        "s.jsonl",
        '{"text": "t", "tags": ["a"], "source": "foo"}\n'
        '{"text": "u", "tags": ["a"], "source": {"url": "http://x"}}\n',
    )
    assert load_file(path) == [
        {"text": "t", "tags": ["a"], "source": "foo"},
        {"text": "u", "tags": ["a"]},
    ]


def test_group_that_is_not_a_string(tmp_path):
    path = write(
        tmp_path,
        "x.jsonl",
        '{"text": "t", "tags": ["a"]}\n{"text": "t", "tags": ["a"], "group": 7}\n',
    )
    assert error_of(path) == (
        f"Invalid data in '{path}' line 2: \"group\" is a number (7), not a string. "
        'Expected "group", when present, to be a non-empty string: examples with the '
        "same group land in the same split (e.g. the packages built from one source). "
        'Write it as a string ("group": "7") or remove the field.'
    )


@pytest.mark.parametrize(
    "group, problem, fix",
    [
        (
            ["a"],
            '"group" is a list (["a"]), not a string',
            "Give a string naming the group, or remove the field.",
        ),
        (
            None,
            '"group" is null (null), not a string',
            "Give a string naming the group, or remove the field.",
        ),
        (" ", '"group" is an empty string', "Give the group a name, or remove the field"),
    ],
)
def test_group_type_and_empty_errors(tmp_path, group, problem, fix):
    path = write(tmp_path, "x.jsonl", json.dumps({"text": "t", "tags": ["a"], "group": group}))
    assert_names(error_of(path), path, 1, problem, 'Expected "group", when present', fix)


def test_json_array_group_error_names_the_item(tmp_path):
    path = write(tmp_path, "x.json", json.dumps([{"text": "t", "tags": ["a"], "group": True}]))
    assert_names(error_of(path), path, None, 'item 1: "group" is a boolean (true), not a string')


def test_tsv_with_group_header_needs_three_columns(tmp_path):
    path = write(tmp_path, "x.tsv", "text\ttags\tgroup\nA server\tweb::server\n")
    assert_names(
        error_of(path),
        path,
        2,
        "found 2 tab-separated columns",
        "text<TAB>tag1,tag2<TAB>group",
        "add the line's group after a tab",
    )


def test_tsv_empty_group_cell(tmp_path):
    path = write(tmp_path, "x.tsv", "text\ttags\tgroup\nA server\tweb::server\t \n")
    assert_names(error_of(path), path, 2, '"group" is an empty string')


def test_tsv_third_column_without_header_suggests_the_group_header(tmp_path):
    path = write(tmp_path, "x.tsv", "A server\tweb::server\tnginx\n")
    assert_names(
        error_of(path),
        path,
        1,
        "found 3 tab-separated columns",
        "Replace the tabs",
        "'text<TAB>tags<TAB>group'",
    )


# Found by the fuzz test (test_loaders_fuzz.py): each was a traceback, or a
# file read wrongly, before.


@pytest.mark.parametrize("field", ["text", "tags", "group"])
def test_unpaired_surrogate_escape_is_a_data_error(tmp_path, field):
    record = {"text": "A server", "tags": ["web"], "group": "g"}
    record[field] = ["web\ud800"] if field == "tags" else "A s\ud800rver"
    path = write(tmp_path, "x.jsonl", json.dumps(record) + "\n")
    assert error_of(path) == (
        f"Invalid data in '{path}' line 1: \"{field}\" contains an unpaired surrogate "
        f"(\\ud800 at character 4), which is not Unicode text. {loaders.JSONL_EXPECTED} "
        "Fix the \\u escape: a surrogate comes in pairs (e.g. \\ud83d\\ude00), or write the "
        "character itself."
    )
    # A pair is one character, and loads.
    path = write(tmp_path, "ok.jsonl", '{"text": "smile \\ud83d\\ude00", "tags": ["t"]}\n')
    assert load_file(path)[0]["text"] == "smile \U0001f600"


@pytest.mark.parametrize("name", ["deep.jsonl", "deep.json"])
def test_json_nested_too_deeply_is_a_data_error(tmp_path, name):
    path = write(tmp_path, name, "[" * 100_000 + "]" * 100_000 + "\n")
    message = error_of(path)
    assert "JSON nested too deeply to read (thousands of levels of [ or {)" in message
    assert message.startswith(f"Invalid data in '{path}'")


def test_gzip_with_a_damaged_body_is_a_data_error(tmp_path):
    packed = bytearray(gzip.compress(b'{"text": "A server", "tags": ["web"]}\n' * 50))
    packed[10] = 0b111  # the first deflate block's type is 3, which does not exist
    path = tmp_path / "x.jsonl.gz"
    path.write_bytes(bytes(packed))
    assert error_of(str(path)).startswith(
        f"Invalid data in '{path}': cannot read the file (Error -3 while decompressing data: "
        "invalid block type). Expected a readable file"
    )


def test_json_array_lines_are_not_glued_together(tmp_path):
    # Two numbers on two lines are not one number: the file is malformed.
    path = write(tmp_path, "x.json", '[{"text": "A server", "tags": ["web"], "id": 1\n2}]\n')
    assert error_of(path).startswith(
        f"Invalid data in '{path}' line 2: malformed JSON (Expecting ',' delimiter: column 1)."
    )
