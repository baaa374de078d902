"""`python -m vtrain.suggest`: top-k and thresholded tags of classifier and TF-IDF runs, and its errors."""

import json
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import runs
from tests.tagging import tiny_tags
from vtrain.tagging import baseline, evaluate, serving, suggest, train

TEXTS = [
    "a fast web server for http requests",
    "Vim, a text editor (with syntax)",
    "arcade game: score a level",
    "ünïcödé mail inbox ✉",
]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return tiny_tags.write(tmp_path_factory.mktemp("data") / "tags.jsonl")


@pytest.fixture(scope="module")
def classifier_run(data_file, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("runs") / "pooled"
    train.train_and_evaluate(tiny_tags.keras_config(data_file), str(workdir))
    return workdir


@pytest.fixture(scope="module")
def tfidf_run(data_file, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("runs") / "tfidf"
    train.train_and_evaluate(tiny_tags.tfidf_config(data_file), str(workdir))
    return workdir


def write_input(path, texts=TEXTS):
    records = [{"id": i, "package": f"p{i}", "text": text} for i, text in enumerate(texts)]
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    return path


def run(*argv):
    """`vtrain.suggest`'s main in this process: (exit code, output lines)."""
    return suggest.main([str(arg) for arg in argv])


def read_output(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def classifier_scores(workdir, texts):
    """sigmoid(logits) of the run's best checkpoint, on data rebuilt from its config.json."""
    import ml_collections

    config = ml_collections.ConfigDict(json.loads((workdir / "config.json").read_text()))
    data = train.load_data(config)
    model = keras.saving.load_model(workdir / "checkpoints" / "best.keras", compile=False)
    logits = model(data.vectorizer(tf.constant(texts)), training=False).numpy()
    return data.tags, 1 / (1 + np.exp(-logits.astype(np.float64)))


def test_classifier_run_top_k_are_its_best_checkpoints_scores(classifier_run, tmp_path):
    source = write_input(tmp_path / "in.jsonl")
    assert (
        run(
            f"--workdir={classifier_run}",
            f"--input={source}",
            f"--output={tmp_path / 'out.jsonl'}",
            "--k=3",
        )
        == 0
    )
    output = read_output(tmp_path / "out.jsonl")
    tags, scores = classifier_scores(classifier_run, TEXTS)
    assert [(o["id"], o["package"]) for o in output] == [(i, f"p{i}") for i in range(len(TEXTS))]
    for row, line in zip(scores, output):
        assert set(line) == {"id", "package", "tags", "scores"}
        best = np.argsort(-row, kind="stable")[:3]
        assert line["tags"] == [tags[i] for i in best]
        assert line["scores"] == pytest.approx(row[best], abs=1e-6)


def test_tfidf_run_top_k_are_its_probabilities(tfidf_run, tmp_path):
    source = write_input(tmp_path / "in.jsonl")
    assert (
        run(f"--workdir={tfidf_run}", f"--input={source}", f"--output={tmp_path / 'out.jsonl'}")
        == 0
    )
    output = read_output(tmp_path / "out.jsonl")
    tagger = baseline.TfidfTagger.load(tfidf_run / baseline.FILE_NAME)
    for row, line in zip(tagger.scores(TEXTS), output):
        best = np.argsort(-row, kind="stable")[: suggest.K]
        assert line["tags"] == [tagger.tags[i] for i in best]
        assert line["scores"] == pytest.approx(row[best], abs=1e-6)


@pytest.mark.parametrize("which", ["classifier_run", "tfidf_run"])
def test_threshold_auto_gives_every_tag_at_or_above_the_runs_threshold(which, request, tmp_path):
    workdir = request.getfixturevalue(which)
    results = json.loads((workdir / "results.json").read_text())
    assert 0 < results["threshold"] < 1
    assert 0 <= results["validation"]["f1@threshold"] <= 1
    source = write_input(tmp_path / "in.jsonl")
    assert (
        run(
            f"--workdir={workdir}",
            f"--input={source}",
            f"--output={tmp_path / 'all.jsonl'}",
            "--threshold=auto",
        )
        == 0
    )
    assert (
        run(
            f"--workdir={workdir}",
            f"--input={source}",
            f"--output={tmp_path / 'top.jsonl'}",
            f"--k={results['num_tags']}",
        )
        == 0
    )
    for above, ranked in zip(
        read_output(tmp_path / "all.jsonl"), read_output(tmp_path / "top.jsonl")
    ):
        count = sum(score >= results["threshold"] for score in ranked["scores"])
        assert above["tags"] == ranked["tags"][:count]
        assert above["scores"] == ranked["scores"][:count]
    # --k caps the thresholded list.
    assert (
        run(
            f"--workdir={workdir}",
            f"--input={source}",
            f"--output={tmp_path / 'capped.jsonl'}",
            "--threshold=0",
            "--k=2",
        )
        == 0
    )
    assert [len(o["tags"]) for o in read_output(tmp_path / "capped.jsonl")] == [2] * len(TEXTS)


def test_run_without_tagger_json_rebuilds_its_vocabulary_from_the_config(classifier_run, tmp_path):
    old = tmp_path / "old-run"  # as finished before tagger.json was written
    shutil.copytree(classifier_run, old)
    (old / serving.TAGGER_FILE).unlink()
    source = write_input(tmp_path / "in.jsonl")
    for workdir, name in ((classifier_run, "new.jsonl"), (old, "old.jsonl")):
        assert run(f"--workdir={workdir}", f"--input={source}", f"--output={tmp_path / name}") == 0
    assert read_output(tmp_path / "old.jsonl") == read_output(tmp_path / "new.jsonl")


def test_stdin_to_stdout_through_the_forwarder(tfidf_run, tmp_path):
    source = write_input(tmp_path / "in.jsonl").read_bytes()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vtrain.suggest",
            f"--workdir={tfidf_run}",
            "--input=-",
            "--output=-",
            "--k=2",
        ],
        input=source,
        capture_output=True,
        cwd=runs.ROOT,
        timeout=300,
        env=runs.environment(),
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    lines = [json.loads(line) for line in result.stdout.decode("utf-8").splitlines()]
    assert [line["id"] for line in lines] == list(range(len(TEXTS)))
    assert all(len(line["tags"]) == 2 for line in lines)


def fails(capsys, *argv):
    """Runs suggest expecting exit 1; returns the message (without 'Error: ')."""
    assert run(*argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("Error: ") and "Traceback" not in err
    return err[len("Error: ") :]


BAD_LINES = {
    "empty": (
        b'{"text": "web"}\n\n',
        'line 2: received an empty line. Expected one JSON object per line with a "text" string',
    ),
    "not utf-8": (
        b'{"text": "caf\xe9"}\n',
        "line 1: received bytes that are not UTF-8 "
        "(invalid continuation byte at byte 14: b'\\xe9'). Expected UTF-8 text. "
        "Re-encode the file",
    ),
    "array": (b'["web server"]\n', "line 1: received a JSON array, not an object."),
    "malformed": (
        b'{"text": "web"\n',
        "line 1: received malformed JSON (Expecting ',' delimiter at column 15).",
    ),
    "no text": (
        b'{"id": 1, "description": "web"}\n',
        "line 1: received an object without "
        '"text" (fields: description, id). Expected one JSON object',
    ),
    "number text": (
        b'{"text": 42}\n',
        'line 1: received a "text" that is a JSON number. Expected one JSON object per line',
    ),
    "tags field": (
        b'{"text": "web", "tags": ["x"]}\n',
        "line 1: received a field 'tags', which the output writes itself.",
    ),
    # Found by test_suggest_fuzz.py: tracebacks, or output that is not JSON.
    "surrogate": (
        b'{"text": "caf\\ud800"}\n',
        "line 1: received an unpaired surrogate escape (\\ud800), which is not Unicode "
        "text. Expected one JSON object per line",
    ),
    "nan": (
        b'{"text": "web", "id": NaN}\n',
        "line 1: received the number NaN, which JSON output cannot hold (no NaN or "
        "infinity; larger than a double).",
    ),
    "overflow": (b'{"text": "web", "rank": 1e999}\n', "line 1: received the number 1e999,"),
    "deep": (
        b"[" * 50_000 + b"]" * 50_000 + b"\n",
        "line 1: received JSON nested too deeply to read (thousands of levels of [ or {).",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_bad_input_lines_fail_with_line_and_fix_and_write_nothing(
    case, tfidf_run, tmp_path, capsys
):
    data, message = BAD_LINES[case]
    source = tmp_path / "in.jsonl"
    source.write_bytes(data)
    output = tmp_path / "out.jsonl"
    output.write_text("previous\n")
    error = fails(capsys, f"--workdir={tfidf_run}", f"--input={source}", f"--output={output}")
    assert error.startswith(f"Invalid input in '{source}' {message}"), error
    assert output.read_text() == "previous\n"  # untouched
    assert runs.files_under(tmp_path) == ["in.jsonl", "out.jsonl"]


def test_a_byte_order_mark_is_skipped_and_unicode_line_breaks_are_escaped(tfidf_run, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_bytes('\ufeff{"id": "a\u2028b", "text": "web server"}\n'.encode())
    output = tmp_path / "out.jsonl"
    assert run(f"--workdir={tfidf_run}", f"--input={source}", f"--output={output}") == 0
    text = output.read_text(encoding="utf-8")
    assert text.splitlines() == text.split("\n")[:-1]  # one object, one line for any reader
    assert json.loads(text)["id"] == "a\u2028b"


def test_missing_run_folder(tmp_path, capsys):
    error = fails(
        capsys, f"--workdir={tmp_path / 'nope'}", "--input=-", f"--output={tmp_path / 'out.jsonl'}"
    )
    assert error == (
        f"Invalid --workdir: received '{tmp_path / 'nope'}', which is not a folder. Expected "
        "the workdir of a finished `python -m vtrain.main` run (it holds results.json). "
        "Check the path, e.g. runs/20260101-120000."
    )
    assert not (tmp_path / "out.jsonl").exists()


def test_unfinished_run(tfidf_run, tmp_path, capsys):
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.json").write_bytes((tfidf_run / "config.json").read_bytes())
    error = fails(
        capsys,
        f"--workdir={workdir}",
        f"--input={write_input(tmp_path / 'in')}",
        f"--output={tmp_path / 'out.jsonl'}",
    )
    assert error.startswith(
        f"Invalid --workdir: received '{workdir}', which has no "
        "results.json: the run is not finished"
    )
    assert error.endswith(
        f"Finish it by re-running its command with --workdir={workdir} (it resumes), then suggest."
    )
    assert not (tmp_path / "out.jsonl").exists()


def test_run_of_a_model_that_cannot_suggest(tmp_path, capsys):
    workdir = tmp_path / "vae"
    workdir.mkdir()
    (workdir / "config.json").write_text(json.dumps({"model": {"name": "vae"}}))
    (workdir / "results.json").write_text("{}")
    error = fails(
        capsys,
        f"--workdir={workdir}",
        f"--input={write_input(tmp_path / 'in')}",
        f"--output={tmp_path / 'out.jsonl'}",
    )
    assert error == (
        f"Invalid --workdir: received a run of model 'vae' ({workdir / 'config.json'}), which "
        "does not score tags one by one. Expected a run of a tag classifier: cnn, pooled, "
        "tfidf. Train one, e.g. `python -m vtrain.main --config=configs/default.py`, and "
        "pass its workdir."
    )


@pytest.mark.parametrize(
    "flag, message",
    [
        (
            "--k=0",
            "Invalid --k: received 0. Expected an integer from 1 to 5, the number of tags "
            "of this run. Pass a smaller --k.",
        ),
        (
            "--threshold=high",
            "Invalid --threshold: received 'high'. Expected 'auto' (the run's "
            "threshold chosen on validation) or a score in [0, 1].",
        ),
        ("--threshold=1.5", "Invalid --threshold: received '1.5'."),
    ],
)
def test_bad_options(flag, message, tfidf_run, tmp_path, capsys):
    error = fails(
        capsys,
        f"--workdir={tfidf_run}",
        f"--input={write_input(tmp_path / 'in')}",
        f"--output={tmp_path / 'out.jsonl'}",
        flag,
    )
    assert error.startswith(message)
    assert not (tmp_path / "out.jsonl").exists()


def test_missing_and_empty_input(tfidf_run, tmp_path, capsys):
    error = fails(
        capsys,
        f"--workdir={tfidf_run}",
        f"--input={tmp_path / 'none.jsonl'}",
        f"--output={tmp_path / 'out.jsonl'}",
    )
    assert error.startswith(
        f"Invalid --input: cannot read '{tmp_path / 'none.jsonl'}' (No such file or directory)."
    )
    (tmp_path / "empty.jsonl").write_text("")
    error = fails(
        capsys,
        f"--workdir={tfidf_run}",
        f"--input={tmp_path / 'empty.jsonl'}",
        f"--output={tmp_path / 'out.jsonl'}",
    )
    assert error.startswith(f"Invalid --input: '{tmp_path / 'empty.jsonl'}' is empty.")


def brute_force_best_f1(scores, labels):
    return max(
        evaluate.threshold_metrics(scores, labels, t)["f1@threshold"]
        for t in [*np.unique(scores), np.inf]
    )


@pytest.mark.parametrize("seed", range(5))
def test_best_threshold_is_the_best_cut_of_the_scores(seed):
    rng = np.random.default_rng(seed)
    # Rounded scores: many ties, which must pass or fail together.
    scores = np.round(rng.random((30, 7)), 1)
    labels = rng.random((30, 7)) < 0.3
    labels[np.arange(30), rng.integers(0, 7, 30)] = True  # at least one true tag each
    threshold, f1 = evaluate.best_threshold(scores, labels)
    assert f1 == pytest.approx(brute_force_best_f1(scores, labels), rel=1e-12)
    assert evaluate.threshold_metrics(scores, labels, threshold)["f1@threshold"] == (
        pytest.approx(f1, rel=1e-12)
    )
