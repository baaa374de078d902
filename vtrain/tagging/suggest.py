"""Tag suggestions for new texts from a finished run.

    python -m vtrain.suggest --workdir=RUN --input=packages.jsonl --output=tags.jsonl
    python -m vtrain.suggest --workdir=RUN --input=- --output=- --k=3      # stdin -> stdout
    python -m vtrain.suggest --workdir=RUN --input=IN --output=OUT --threshold=auto

The input is JSON lines, one object per line with a `text` string. The
output has one object per input line, in order: the input's other fields
(`id`, `package`, ...), then `tags` (tag names, best first) and `scores`
(each tag's probability: the sigmoid of a word classifier's logit, or the
TF-IDF baseline's logistic regression). By default the `--k` best tags
(5); `--threshold=auto` gives instead every tag whose score is at or above
the run's threshold, chosen on the validation split to maximise the
example-based F1 (the mean over examples of each one's F1; stored in
`results.json` as `threshold`, its F1 as `validation.f1@threshold`), and
`--threshold=0.4` a threshold of your own; `--k` then caps the count.

Works for runs of the word classifiers (`pooled`, `cnn`) and of the TF-IDF
baseline (`tfidf`). Every error exits with status 1 and a message saying
what was received, what was expected and how to fix it, before any output
is written; a file output is written atomically (stdout is streamed).

>>> tags = ["editor", "web", "game"]
>>> scores = np.array([[0.25, 0.75, 0.5]], np.float32)
>>> suggestions(scores, tags, k=2)
[(['web', 'game'], [0.75, 0.5])]
>>> suggestions(scores, tags, threshold=0.6)
[(['web'], [0.75])]
"""

import argparse
import json
import math
import os
import re
import sys

import numpy as np

from vtrain import io as vtrain_io

K = 5  # tags per text without --threshold
BATCH_SIZE = 256  # texts scored at once
# Fields the output writes itself: an input field of the same name is an error.
OUTPUT_FIELDS = ("tags", "scores")


class SuggestError(ValueError):
    """A bad run folder, input line or option; the message says received / expected / fix."""


def main(argv=None):
    """`python -m vtrain.suggest`: parses the flags, writes the suggestions; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m vtrain.suggest",
        description="Suggest tags for JSON-lines texts with a finished vtrain.main run.",
    )
    parser.add_argument(
        "--workdir",
        required=True,
        help="the run folder of `python -m vtrain.main` (with results.json)",
    )
    parser.add_argument(
        "--input", required=True, help='JSON lines with a "text" field; - for stdin'
    )
    parser.add_argument("--output", required=True, help="JSON lines to write; - for stdout")
    parser.add_argument(
        "--k",
        type=int,
        default=None,
        help=f"tags per text (default {K}; with --threshold, at most k)",
    )
    parser.add_argument(
        "--threshold",
        default=None,
        help="'auto' (the run's validation-chosen threshold) or a score "
        "in [0, 1]: every tag at or above it instead of the top k",
    )
    args = parser.parse_args(argv)
    try:
        suggest_file(args.workdir, args.input, args.output, k=args.k, threshold=args.threshold)
    except SuggestError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    return 0


def suggest_file(workdir, input_path, output_path, k=None, threshold=None):
    """Reads `input_path` (JSON lines, `-` = stdin), writes suggestions to `output_path`.

    Checks the run, the options and every input line before loading the
    model or writing anything. See the module docstring for the formats.

    Raises:
        SuggestError: with what was received, what was expected, the fix.
    """
    run = check_run(workdir)
    threshold = _threshold(threshold, run)
    records = read_records(input_path)
    tagger = load_tagger(workdir, run)
    if k is not None and (isinstance(k, bool) or not 1 <= k <= len(tagger.tags)):
        raise SuggestError(
            f"Invalid --k: received {k!r}. Expected an integer from 1 to "
            f"{len(tagger.tags)}, the number of tags of this run. Pass a smaller --k."
        )
    lines = []
    for start in range(0, len(records), BATCH_SIZE):
        batch = records[start : start + BATCH_SIZE]
        scores, logits = tagger.scores([record["text"] for record in batch])
        for record, (tags, values) in zip(
            batch, suggestions(scores, tagger.tags, k=k, threshold=threshold, logits=logits)
        ):
            fields = {name: value for name, value in record.items() if name != "text"}
            lines.append(_json_line({**fields, "tags": tags, "scores": values}))
    text = "".join(lines)
    if output_path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        try:
            vtrain_io.atomic_write_text(output_path, text)
        except OSError as error:
            raise SuggestError(
                f"Cannot write --output={output_path}: {error}. Expected a writable "
                "file path (its folder must exist), or - for stdout."
            ) from None


def suggestions(scores, tags, k=None, threshold=None, logits=None):
    """`[(tag names, scores)]` per row of `scores` `[N, T]`, best first.

    Without `threshold`, the `k` (default `K`) best tags; with it, every
    tag whose score is >= `threshold`, at most `k` if given. Tags are
    ranked on `logits` when given (a classifier's; the sigmoids of large
    logits round to equal floats), else on the scores, ties broken by the
    lower tag index.
    """
    scores = np.asarray(scores, np.float32)
    ranking = np.asarray(scores if logits is None else logits)
    order = np.argsort(-ranking, axis=1, kind="stable")
    if threshold is None:
        order = order[:, : K if k is None else k]
    result = []
    for row, ranked in zip(scores, order):
        if threshold is not None:
            ranked = [i for i in ranked if row[i] >= threshold][:k]
        result.append(([tags[i] for i in ranked], [float(row[i]) for i in ranked]))
    return result


def check_run(workdir):
    """The finished run's `results.json` and `config.json`, checked it can suggest.

    Returns:
        `{"results": dict, "model": config.model.name}`.

    Raises:
        SuggestError: the folder is missing, the run is unfinished (no
            `results.json`), or its model cannot suggest tags.
    """
    if not os.path.isdir(workdir):
        raise SuggestError(
            f"Invalid --workdir: received {workdir!r}, which is not a folder. Expected "
            "the workdir of a finished `python -m vtrain.main` run (it holds results.json). "
            "Check the path, e.g. runs/20260101-120000."
        )
    results_path = os.path.join(workdir, "results.json")
    config_path = os.path.join(workdir, "config.json")
    if not os.path.isfile(results_path) or not os.path.isfile(config_path):
        missing = "results.json" if os.path.isfile(config_path) else "config.json"
        raise SuggestError(
            f"Invalid --workdir: received {workdir!r}, which has no {missing}: the run "
            "is not finished (still training, interrupted, or not a run folder). Expected "
            "a finished run of `python -m vtrain.main`. Finish it by re-running its "
            f"command with --workdir={workdir} (it resumes), then suggest."
        )
    with open(results_path, encoding="utf-8") as f:
        results = json.load(f)
    with open(config_path, encoding="utf-8") as f:
        name = json.load(f)["model"]["name"]
    if name not in suggesting_models():
        raise SuggestError(
            f"Invalid --workdir: received a run of model {name!r} ({config_path}), which "
            "does not score tags one by one. Expected a run of a tag classifier: "
            f"{', '.join(suggesting_models())}. Train one, e.g. `python -m vtrain.main "
            "--config=configs/default.py`, and pass its workdir."
        )
    return {"results": results, "model": name}


def suggesting_models():
    """The `config.model.name`s whose runs can suggest: word classifiers and the baseline.

    Example:
    >>> suggesting_models()
    ('cnn', 'pooled', 'tfidf')
    """
    from vtrain.tagging import baseline
    from vtrain.tagging.models import MODELS, model_class
    from vtrain.tagging.models.classifier import TagClassifier

    names = [name for name in MODELS if issubclass(model_class(name), TagClassifier)]
    return tuple(sorted([*names, baseline.NAME]))


def _threshold(value, run):
    if value is None:
        return None
    if value == "auto":
        if "threshold" not in run["results"]:
            raise SuggestError(
                "Invalid --threshold: received 'auto' for a run whose results.json has no "
                "threshold (it was trained before thresholds were chosen). Expected a run "
                "that stored one. Pass a number instead, e.g. --threshold=0.4, or retrain."
            )
        return float(run["results"]["threshold"])
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is None or not 0.0 <= number <= 1.0:
        raise SuggestError(
            f"Invalid --threshold: received {value!r}. Expected 'auto' (the run's "
            "threshold chosen on validation) or a score in [0, 1]. Fix the value, e.g. "
            "--threshold=auto."
        )
    return number


def read_records(path):
    """The JSON objects of a JSON-lines file (`-` = stdin), every line checked.

    Raises:
        SuggestError: the file is missing, or a line is empty, not UTF-8,
            not JSON (or nested thousands deep), not a JSON object, has no
            string `text`, has a field the output writes (`tags`,
            `scores`), a NaN, an infinity or a number beyond a double
            (JSON output cannot hold them), or an unpaired surrogate escape
            (not Unicode text).
    """
    name = "stdin" if path == "-" else repr(path)
    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as error:
            raise SuggestError(
                f"Invalid --input: cannot read {path!r} ({error.strerror}). Expected a "
                'JSON-lines file with a "text" field per line, or - for stdin. Check '
                "the path."
            ) from None
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last line
    records = []
    for number, raw in enumerate(lines, start=1):
        records.append(_record(raw, number, name))
    if not records:
        raise SuggestError(
            f"Invalid --input: {name} is empty. Expected one JSON object per line with "
            'a "text" field, e.g. {"id": "vim", "text": "Vi IMproved, a text editor"}.'
        )
    return records


_EXPECTED = (
    'Expected one JSON object per line with a "text" string, e.g. '
    '{"id": "vim", "text": "Vi IMproved, a text editor"}.'
)


def _record(raw, number, name):
    where = f"Invalid input in {name} line {number}"
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SuggestError(
            f"{where}: received bytes that are not UTF-8 ({error.reason} at byte "
            f"{error.start + 1}: {raw[error.start : error.start + 1]!r}). Expected UTF-8 "
            "text. Re-encode the file, e.g. `iconv -f latin1 -t utf-8`."
        ) from None
    if number == 1 and line.startswith("\ufeff"):
        line = line[1:]  # the byte-order mark some editors write
    if not line.strip():
        raise SuggestError(
            f"{where}: received an empty line. {_EXPECTED} Remove the empty line (each "
            "output line answers one input line)."
        )
    try:
        record = json.loads(line, parse_constant=_not_json, parse_float=_finite)
    except json.JSONDecodeError as error:
        raise SuggestError(
            f"{where}: received malformed JSON ({error.msg} at column "
            f"{error.colno}). {_EXPECTED} Fix the line."
        ) from None
    except RecursionError:
        raise SuggestError(
            f"{where}: received JSON nested too deeply to read (thousands of levels of [ "
            f"or {{). {_EXPECTED} Flatten the line."
        ) from None
    except _NotJsonNumber as error:
        raise SuggestError(
            f"{where}: received the number {error.args[0]}, which JSON output cannot "
            f"hold (no NaN or infinity; larger than a double). {_EXPECTED} Write it as a "
            'string (e.g. "1e999") or as a number that fits.'
        ) from None
    surrogate = _unpaired_surrogate(record)
    if surrogate is not None:
        raise SuggestError(
            f"{where}: received an unpaired surrogate escape (\\u{ord(surrogate):04x}), "
            f"which is not Unicode text. {_EXPECTED} Fix the \\u escape: a surrogate "
            "comes in pairs (e.g. \\ud83d\\ude00), or write the character itself."
        )
    if not isinstance(record, dict):
        raise SuggestError(
            f"{where}: received a JSON {_json_type(record)}, not an object. {_EXPECTED} "
            'Wrap the text, e.g. {"text": ...}.'
        )
    if "text" not in record:
        raise SuggestError(
            f'{where}: received an object without "text" (fields: '
            f"{', '.join(sorted(record)) or 'none'}). {_EXPECTED} Add the "
            'field, or rename yours to "text".'
        )
    if not isinstance(record["text"], str):
        raise SuggestError(
            f'{where}: received a "text" that is a JSON '
            f"{_json_type(record['text'])}. {_EXPECTED} Make it a string."
        )
    for field in OUTPUT_FIELDS:
        if field in record:
            raise SuggestError(
                f"{where}: received a field {field!r}, which the output writes itself. "
                f"Expected input fields other than {' and '.join(OUTPUT_FIELDS)}. Remove or "
                f"rename it, e.g. `jq -c 'del(.tags, .scores)'`."
            )
    return record


# Characters other than "\n" that some readers (Python's str.splitlines) end
# a line at; JSON allows them raw in strings, so they are written escaped.
_LINE_BREAKS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _json_line(value):
    """`value` as one line of JSON, UTF-8 kept, Unicode line breaks escaped.

    Example:
    >>> _json_line({"id": "a\u2028b", "tags": ["é"]})
    '{"id": "a\\\\u2028b", "tags": ["é"]}\\n'
    """
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    for character, escape in _LINE_BREAKS.items():
        text = text.replace(character, escape)
    return text + "\n"


class _NotJsonNumber(ValueError):
    """NaN, Infinity or a float that overflows: Python reads them, JSON has none."""


def _not_json(constant):
    raise _NotJsonNumber(constant)


def _finite(text):
    value = float(text)
    if not math.isfinite(value):
        raise _NotJsonNumber(text)
    return value


def _unpaired_surrogate(value):
    """The first unpaired surrogate in any string (key or value) of `value`, or None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            match = _SURROGATE.search(item)
            if match:
                return match.group()
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


_SURROGATE = re.compile("[\ud800-\udfff]")


def _json_type(value):
    for kind, name in (
        (bool, "boolean"),
        (str, "string"),
        ((int, float), "number"),
        (list, "array"),
        (dict, "object"),
    ):
        if isinstance(value, kind):
            return name
    return "null"


def load_tagger(workdir, run):
    """The run's scorer: `.tags` and `.scores(texts) -> (scores [N, T], logits or None)`."""
    if run["model"] == "tfidf":
        return _TfidfScorer(workdir)
    return _ClassifierScorer(workdir, run["model"])


class _TfidfScorer:
    def __init__(self, workdir):
        from vtrain.tagging import baseline

        try:
            self.tagger = baseline.TfidfTagger.load(os.path.join(workdir, baseline.FILE_NAME))
        except ImportError as error:
            raise SuggestError(f"Cannot load the TF-IDF run in {workdir!r}: {error}") from None
        self.tags = self.tagger.tags

    def scores(self, texts):
        return self.tagger.scores(texts), None


class _ClassifierScorer:
    """A word classifier's best checkpoint and vectorizer; score = sigmoid(logit)."""

    def __init__(self, workdir, name):
        import keras

        from vtrain.tagging import serving
        from vtrain.tagging.models import model_class

        model_class(name)  # registers the class for load_model
        saved = serving.read_tagger(workdir)
        if saved is None:
            # A run finished before tagger.json existed: its data is rebuilt
            # from config.json (deterministic: same vocabulary and tags).
            import ml_collections

            from vtrain.tagging import train

            with open(os.path.join(workdir, "config.json"), encoding="utf-8") as f:
                data = train.load_data(ml_collections.ConfigDict(json.load(f)))
            self.tags, self.vectorizer = list(data.tags), data.vectorizer
        else:
            _, self.tags, self.vectorizer = saved
        self.model = keras.saving.load_model(
            os.path.join(workdir, "checkpoints", "best.keras"), compile=False
        )

    def scores(self, texts):
        import tensorflow as tf

        logits = self.model(self.vectorizer(tf.constant(texts, tf.string)), training=False)
        return tf.sigmoid(logits).numpy(), logits.numpy()
