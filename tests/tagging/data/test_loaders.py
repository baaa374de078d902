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
    path = write(tmp_path, "d.jsonl",
                 '{"package": "p", "text": " Chess engine ", "tags": ["b", "a", "a"]}\n'
                 "\n"
                 '{"id": 3, "text": "Editor", "tags": "x, y,,"}\n')
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
    path = write(tmp_path, "x.jsonl", '{"text": "a", "tags": ["a"]}\n' * 6
                 + '{"text": "a" "tags": ["a"]}\n')
    message = error_of(path)
    assert_names(message, path, 7, "malformed JSON (Expecting ',' delimiter: column 14)",
                 'Expected one JSON object per line with fields "text" (string) and "tags"')


def test_csv_content_in_jsonl_file(tmp_path):
    path = write(tmp_path, "x.jsonl", "text,tags\nhello,a\n")
    assert_names(error_of(path), path, 1, "malformed JSON", "looks like CSV")


def test_missing_field_lists_the_fields_found(tmp_path):
    path = write(tmp_path, "x.jsonl", '{"text": "t", "tags": ["a"]}\n'
                 '{"title": "t", "labels": ["a"]}\n')
    assert_names(error_of(path), path, 2, 'missing field "text", "tags"',
                 'fields found: "title", "labels"')


def test_json_value_that_is_not_an_object(tmp_path):
    path = write(tmp_path, "x.jsonl", '["t", ["a"]]\n')
    assert_names(error_of(path), path, 1, "found a list, not a JSON object")


@pytest.mark.parametrize("record, problem", [
    ({"text": 5, "tags": ["a"]}, '"text" is a number, not a string'),
    ({"text": "t", "tags": {"a": 1}}, '"tags" is an object, not a list of strings'),
    ({"text": "t", "tags": ["a", 2]}, '"tags" contains a number (2), not a string'),
    ({"text": "t", "tags": ["a"], "id": [1]}, '"id" is a list, not a string or integer'),
])
def test_wrong_types(tmp_path, record, problem):
    path = write(tmp_path, "x.jsonl", json.dumps(record) + "\n")
    assert_names(error_of(path), path, 1, problem)


def test_empty_text(tmp_path):
    path = write(tmp_path, "x.jsonl",
                 '{"text": "t", "tags": ["a"]}\n{"text": "  ", "tags": ["a"]}\n')
    assert_names(error_of(path), path, 2, "empty text")


@pytest.mark.parametrize("tags", [[], "", " , ", [" "]])
def test_empty_tag_list_is_rejected(tmp_path, tags):
    path = write(tmp_path, "x.jsonl", json.dumps({"text": "t", "tags": tags}) + "\n")
    assert_names(error_of(path), path, 1, "empty tag list", "at least one tag")


def test_unknown_extension(tmp_path):
    path = write(tmp_path, "x.csv", "text,tags\nhello,a\n")
    assert_names(error_of(path), path, None, "unknown file extension (.csv)", ".jsonl, .json, .tsv",
                 "Convert it")


@pytest.mark.parametrize("name", ["x.jsonl", "x.tsv", "x.json"])
def test_empty_file(tmp_path, name):
    path = write(tmp_path, name, "\n  \n")
    assert_names(error_of(path), path, None, "the file is empty")


def test_tsv_header_only(tmp_path):
    path = write(tmp_path, "x.tsv", "text\ttags\n")
    assert_names(error_of(path), path, None, "header but no examples")


def test_csv_content_in_tsv_file(tmp_path):
    path = write(tmp_path, "x.tsv", "text\ttags\nhello world,devel::lang:c\n")
    assert_names(error_of(path), path, 2, "found 1 tab-separated column", "CSV",
                 "text<TAB>tag1,tag2")


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
