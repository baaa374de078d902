"""Load tag-recommendation examples from the user's own files.

Every loader returns a list of examples, one dict each::

    {"text": "a non-empty string", "tags": ["sorted", "unique", "tags"],
     "package": "optional name", "id": "optional id",
     "group": "optional split group", "source": "optional source package"}

Supported formats (chosen by the file name; a trailing ``.gz`` is allowed on
any of them):

- ``.jsonl`` / ``.json``: one JSON object per line with fields ``text``
  (string) and ``tags`` (list of strings, or one comma-separated string),
  optionally ``package`` or ``id`` (string or integer) and ``group`` (a
  non-empty string: examples sharing a group land in one split); ``source``
  is kept when it is a string (the bundled data's Debian source package);
  other fields are ignored. A ``.json`` file holding a single JSON array of
  such objects is accepted too.
- ``.tsv``: two tab-separated columns ``text<TAB>tag1,tag2``, with an optional
  header line ``text<TAB>tags``; with the header ``text<TAB>tags<TAB>group``,
  a third column gives each example's group.

Blank lines are skipped. An example with no tag is rejected rather than
silently dropped: a multi-label model cannot learn from it and it usually
means a column went missing. Every problem raises `DataError` (a
`ValueError`) naming the file, the 1-based line, what was found, what was
expected and how to fix it.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "mine.tsv")
>>> with open(path, "w") as f:
...     _ = f.write("text\\ttags\\nA fast web server\\tweb::server, role::program\\n")
>>> load_file(path)
[{'text': 'A fast web server', 'tags': ['role::program', 'web::server']}]
"""

import gzip
import json
import os
import re
import zlib

JSONL_EXPECTED = (
    'Expected one JSON object per line with fields "text" (string) and '
    '"tags" (list of strings, or a comma-separated string).'
)
TSV_EXPECTED = (
    "Expected two tab-separated columns per line: text<TAB>tag1,tag2 "
    "(an optional first line 'text<TAB>tags' is a header)."
)
TSV_GROUP_EXPECTED = (
    "Expected three tab-separated columns per line: text<TAB>tag1,tag2<TAB>group "
    "(the header line 'text<TAB>tags<TAB>group' announces the group column)."
)
GROUP_EXPECTED = (
    'Expected "group", when present, to be a non-empty string: examples with the '
    "same group land in the same split (e.g. the packages built from one source)."
)
SUPPORTED_EXTENSIONS = (".jsonl", ".json", ".tsv")
OPTIONAL_ID_FIELDS = ("package", "id")
TSV_HEADER = ["text", "tags"]
TSV_GROUP_HEADER = ["text", "tags", "group"]


class DataError(ValueError):
    """A data file could not be read as tag-recommendation examples.

    The message names the file, the 1-based line (when there is one), the
    problem, what was expected and how to fix it.

    >>> str(DataError("x.jsonl", 7, "empty text", 'Expected a non-empty "text".'))
    'Invalid data in \\'x.jsonl\\' line 7: empty text. Expected a non-empty "text".'
    """

    def __init__(self, path, line, problem, expected, fix=None):
        where = f"'{path}'" + (f" line {line}" if line is not None else "")
        message = f"Invalid data in {where}: {problem}. {expected}"
        if fix:
            message += f" {fix}"
        super().__init__(message)
        self.path = path
        self.line = line
        self.problem = problem


class DataFileNotFoundError(DataError, FileNotFoundError):
    """The data file does not exist (both a `DataError` and a `FileNotFoundError`).

    >>> try:
    ...     load_file("no/such/file.jsonl")
    ... except FileNotFoundError as error:
    ...     print(error.path, "->", error.problem)
    no/such/file.jsonl -> file not found
    """


def load_file(path):
    """Read examples from a ``.jsonl``, ``.json``, ``.tsv`` file (optionally ``.gz``).

    Args:
        path: the file to read; its extension picks the format.

    Returns:
        A list of dicts with ``text`` (stripped string), ``tags`` (sorted list
        of unique, stripped tags) and, when the file has them, ``package`` /
        ``id``, ``group`` (stripped string) and ``source`` (a string).

    Raises:
        DataFileNotFoundError: the file does not exist.
        DataError: anything else wrong with the file; the message says where.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "mine.jsonl")
    >>> with open(path, "w") as f:
    ...     _ = f.write('{"id": 1, "text": "Chess engine", "tags": "game::board"}\\n')
    >>> load_file(path)
    [{'text': 'Chess engine', 'tags': ['game::board'], 'id': 1}]
    """
    path = os.fspath(path)
    kind = _format_of(path)
    if not os.path.isfile(path):
        raise DataFileNotFoundError(
            path,
            None,
            "file not found" + (" (it is a directory)" if os.path.isdir(path) else ""),
            _expected_for(kind),
            f"Check the path, relative to the current directory {os.getcwd()!r}.",
        )
    lines = _read_lines(path)
    if not any(line.strip() for line in lines):
        raise DataError(
            path,
            None,
            "the file is empty (no examples)",
            _expected_for(kind),
            "Add at least one example.",
        )
    if kind == "tsv":
        return _parse_tsv(path, lines)
    if kind == "json" and "".join(lines).lstrip().startswith("["):
        return _parse_json_array(path, "\n".join(lines))
    return _parse_jsonl(path, lines)


def _format_of(path):
    """Returns 'jsonl', 'json' or 'tsv' from the file name, or raises DataError."""
    name = path.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for extension in SUPPORTED_EXTENSIONS:
        if name.endswith(extension):
            return extension[1:]
    found = os.path.splitext(name)[1] or "no extension"
    fix = "Rename the file if it already has one of these formats"
    if found == ".csv":
        fix = "Convert it: save it as .tsv (text<TAB>tag1,tag2) or as JSON lines (.jsonl)"
    raise DataError(
        path,
        None,
        f"unknown file extension ({found})",
        "Expected one of .jsonl, .json, .tsv (each optionally .gz): " + JSONL_EXPECTED,
        fix + ".",
    )


def _expected_for(kind):
    return TSV_EXPECTED if kind == "tsv" else JSONL_EXPECTED


def _read_lines(path):
    """Returns the decoded lines of a plain or gzip file; names the line on bad UTF-8."""
    opener = gzip.open if path.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw_lines = f.read().splitlines()
    except (gzip.BadGzipFile, EOFError, OSError, zlib.error) as error:
        raise DataError(
            path,
            None,
            f"cannot read the file ({error})",
            "Expected a readable file; a name ending in .gz must be gzip-compressed.",
            "Decompress it or remove the .gz from its name.",
        ) from error
    lines = []
    for number, raw in enumerate(raw_lines, start=1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise DataError(
                path,
                number,
                f"not valid UTF-8 ({error.reason} at byte {error.start + 1})",
                "Expected UTF-8 text.",
                "Re-save the file as UTF-8.",
            ) from error
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    return lines


def _parse_jsonl(path, lines):
    examples = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(
                path,
                number,
                f"malformed JSON ({error.msg}: column {error.colno})",
                JSONL_EXPECTED,
                _json_fix(line),
            ) from error
        except RecursionError:
            raise DataError(path, number, _TOO_DEEP, JSONL_EXPECTED) from None
        examples.append(_example_from_record(path, number, record, JSONL_EXPECTED))
    return examples


def _parse_json_array(path, content):
    """A whole-file JSON array; problems are reported as 'item N' on line 1."""
    expected = 'Expected a JSON array of objects with fields "text" and "tags".'
    try:
        records = json.loads(content)
    except json.JSONDecodeError as error:
        raise DataError(
            path, error.lineno, f"malformed JSON ({error.msg}: column {error.colno})", expected
        ) from error
    except RecursionError:
        raise DataError(path, None, _TOO_DEEP, expected) from None
    if not isinstance(records, list):
        raise DataError(path, 1, f"found {_a(records)}, not a JSON array", expected)
    return [
        _example_from_record(path, None, record, expected, item=i)
        for i, record in enumerate(records, start=1)
    ]


# Python's JSON parser recurses once per nesting level: a file of thousands of
# "[" would otherwise end in a RecursionError.
_TOO_DEEP = "JSON nested too deeply to read (thousands of levels of [ or {)"


def _json_fix(line):
    stripped = line.lstrip()
    if not stripped.startswith(("{", "[")):
        guess = "TSV" if "\t" in line else "CSV or plain text"
        return (
            f"The line does not start with '{{': it looks like {guess}, not JSON; "
            "save TSV data with a .tsv extension."
        )
    return "Fix the line, or check that each JSON object is on one line."


def _example_from_record(path, line, record, expected, item=None):
    """Validates one decoded JSON value and returns the normalised example."""
    where = f"item {item}: " if item is not None else ""
    if not isinstance(record, dict):
        raise DataError(path, line, f"{where}found {_a(record)}, not a JSON object", expected)
    missing = [field for field in ("text", "tags") if field not in record]
    if missing:
        raise DataError(
            path,
            line,
            f"{where}missing field {_quoted(missing)} (fields found: {_quoted(record) or 'none'})",
            expected,
            'Rename the fields of your data to "text" and "tags".',
        )
    for field in ("text", "tags", *OPTIONAL_ID_FIELDS, "group", "source"):
        _check_unicode(path, line, field, record.get(field), where, expected)
    text = _check_text(path, line, record["text"], where, expected)
    tags = _check_tags(path, line, record["tags"], where, expected)
    example = {"text": text, "tags": tags}
    for field in OPTIONAL_ID_FIELDS:
        if field in record:
            example[field] = _check_id(path, line, field, record[field], where, expected)
    if "group" in record:
        example["group"] = _check_group(path, line, record["group"], where)
    # Informational (the bundled data's source package); a non-string
    # "source" of the user's own is ignored like any other field, as before.
    if isinstance(record.get("source"), str):
        example["source"] = record["source"]
    return example


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_unicode(path, line, field, value, where, expected):
    """Rejects a JSON \\ud800-style escape left unpaired: not text, and not UTF-8 encodable."""
    strings = value if isinstance(value, list) else [value]
    for string in strings:
        match = _SURROGATE.search(string) if isinstance(string, str) else None
        if match:
            raise DataError(
                path,
                line,
                f'{where}"{field}" contains an unpaired surrogate '
                f"(\\u{ord(match.group()):04x} at character {match.start() + 1}), which is "
                "not Unicode text",
                expected,
                "Fix the \\u escape: a surrogate comes in pairs (e.g. \\ud83d\\ude00), or "
                "write the character itself.",
            )


def _check_text(path, line, text, where, expected):
    if not isinstance(text, str):
        raise DataError(path, line, f'{where}"text" is {_a(text)}, not a string', expected)
    if not text.strip():
        raise DataError(
            path, line, f"{where}empty text", expected, "Remove the line or give it a text."
        )
    return text.strip()


def _check_tags(path, line, tags, where, expected):
    if isinstance(tags, str):
        tags = tags.split(",")
    elif isinstance(tags, list):
        for tag in tags:
            if not isinstance(tag, str):
                raise DataError(
                    path,
                    line,
                    f'{where}"tags" contains {_a(tag)} ({json.dumps(tag)}), not a string',
                    expected,
                )
    else:
        raise DataError(path, line, f'{where}"tags" is {_a(tags)}, not a list of strings', expected)
    cleaned = sorted({tag.strip() for tag in tags if tag.strip()})
    if not cleaned:
        raise DataError(
            path,
            line,
            f"{where}empty tag list",
            expected,
            "Every example needs at least one tag: add one or remove the line.",
        )
    return cleaned


def _check_id(path, line, field, value, where, expected):
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(
            path, line, f'{where}"{field}" is {_a(value)}, not a string or integer', expected
        )
    return value


def _check_group(path, line, group, where):
    if not isinstance(group, str):
        shown = json.dumps(group)
        fix = (
            f'Write it as a string ("group": "{group}") or remove the field.'
            if isinstance(group, (int, float)) and not isinstance(group, bool)
            else "Give a string naming the group, or remove the field."
        )
        raise DataError(
            path,
            line,
            f'{where}"group" is {_a(group)} ({shown}), not a string',
            GROUP_EXPECTED,
            fix,
        )
    if not group.strip():
        raise DataError(
            path,
            line,
            f'{where}"group" is an empty string',
            GROUP_EXPECTED,
            "Give the group a name, or remove the field to split the example "
            "by its package / id / text.",
        )
    return group.strip()


def _parse_tsv(path, lines):
    examples = []
    expected, width = TSV_EXPECTED, 2
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        columns = line.split("\t")
        if number == _first_nonblank(lines) and _header_of(columns):
            if _header_of(columns) == TSV_GROUP_HEADER:
                expected, width = TSV_GROUP_EXPECTED, 3
            continue
        if len(columns) != width:
            raise DataError(
                path,
                number,
                f"found {len(columns)} tab-separated column{'s' if len(columns) != 1 else ''}",
                expected,
                _tsv_fix(line, columns, width),
            )
        text = _check_text(path, number, columns[0], "", expected)
        example = {"text": text, "tags": _check_tags(path, number, columns[1], "", expected)}
        if width == 3:
            example["group"] = _check_group(path, number, columns[2], "")
        examples.append(example)
    if not examples:
        raise DataError(
            path,
            None,
            "the file has a header but no examples",
            expected,
            "Add at least one example.",
        )
    return examples


def _first_nonblank(lines):
    return next(number for number, line in enumerate(lines, start=1) if line.strip())


def _header_of(columns):
    """The header (``TSV_HEADER`` or ``TSV_GROUP_HEADER``) these columns spell, else None."""
    names = [column.strip().lower() for column in columns]
    return names if names in (TSV_HEADER, TSV_GROUP_HEADER) else None


def _tsv_fix(line, columns, width=2):
    if len(columns) == 1 and line.lstrip().startswith("{"):
        return "The line looks like JSON: save JSON lines with a .jsonl extension."
    if len(columns) == 1 and "," in line:
        return "The line has no tab: if this is a CSV file, convert it to tab-separated columns."
    if width == 3 and len(columns) == 2:
        return "The header has a group column: add the line's group after a tab."
    if width == 2 and len(columns) == 3:
        return (
            "Replace the tabs inside the text with spaces, or, if the third column is "
            "a group, start the file with the header line 'text<TAB>tags<TAB>group'."
        )
    if len(columns) > width:
        return "Replace the tabs inside the text with spaces."
    return "Separate the text and its tags with one tab."


def _quoted(names):
    return ", ".join(f'"{name}"' for name in names)


def _a(value):
    """'an object', 'a list', ... for a decoded JSON value."""
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), "a " + type(value).__name__)
