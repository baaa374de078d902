"""The TF-IDF baseline: its metrics against scikit-learn fitted here, its data, its run folder."""

import json
import sys

import numpy as np
import pytest

from tests import runs
from tests.tagging import tiny_tags
from vtrain.tagging import baseline, train
from vtrain.tagging.data import debtags, loaders, pipeline

KS = (1, 3, 5)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return tiny_tags.write(tmp_path_factory.mktemp("data") / "tags.jsonl")


@pytest.fixture(scope="module")
def finished(data_file, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("runs") / "tfidf"
    results = train.train_and_evaluate(tiny_tags.tfidf_config(data_file), str(workdir))
    return workdir, results


def reference_metrics(scores, labels, k):
    """P, R, F1 and NDCG at k, written out from their definitions (docs/guide.md)."""
    rows = []
    for row_scores, row_labels in zip(scores, labels):
        ranked = sorted(range(len(row_scores)), key=lambda i: (-row_scores[i], i))[:k]
        true = set(np.flatnonzero(row_labels))
        hits = sum(i in true for i in ranked)
        p, r = hits / k, hits / len(true)
        dcg = sum(1 / np.log2(rank + 2) for rank, i in enumerate(ranked) if i in true)
        idcg = sum(1 / np.log2(rank + 2) for rank in range(min(k, len(true))))
        rows.append((p, r, 2 * p * r / (p + r) if hits else 0.0, dcg / idcg))
    p, r, f1, ndcg = np.mean(rows, axis=0)
    return {f"precision@{k}": p, f"recall@{k}": r, f"f1@{k}": f1, f"ndcg@{k}": ndcg}


def example_f1(scores, labels, threshold):
    predicted = scores >= threshold
    hits = (predicted & (labels > 0)).sum(axis=1)
    return np.mean(2 * hits / (predicted.sum(axis=1) + labels.sum(axis=1)))


def test_metrics_equal_scikit_learn_fitted_in_the_test(data_file, finished):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    _, results = finished
    splits = debtags.split_examples(loaders.load_file(str(data_file)), min_tag_train_uses=2)
    tags = splits["tags"]
    index = {tag: i for i, tag in enumerate(tags)}

    def labels(name):
        y = np.zeros((len(splits[name]), len(tags)), int)
        for row, example in enumerate(splits[name]):
            y[row, [index[tag] for tag in example["tags"]]] = 1
        return y

    vectorizer = TfidfVectorizer(
        min_df=2, sublinear_tf=True, ngram_range=(1, 2), max_features=200000
    )
    classifier = OneVsRestClassifier(LogisticRegression(C=10, solver="liblinear", random_state=0))
    classifier.fit(vectorizer.fit_transform([e["text"] for e in splits["train"]]), labels("train"))
    scores = {
        name: classifier.predict_proba(vectorizer.transform([e["text"] for e in splits[name]]))
        for name in ("validation", "test")
    }
    for name in ("validation", "test"):
        expected = {}
        for k in KS:
            expected.update(reference_metrics(scores[name], labels(name), k))
        got = {key: results[name][key] for key in expected}
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12), name
    assert results["num_features"] == len(vectorizer.vocabulary_)
    assert results["num_train"] == len(splits["train"])
    assert results["num_tags"] == len(tags)

    # The threshold: no cut of the validation scores has a higher example F1.
    threshold = results["threshold"]
    best = example_f1(scores["validation"], labels("validation"), threshold)
    assert results["validation"]["f1@threshold"] == pytest.approx(best, rel=1e-9)
    candidates = np.unique(scores["validation"])
    assert max(
        example_f1(scores["validation"], labels("validation"), t) for t in candidates
    ) == pytest.approx(best, rel=1e-9)
    assert results["test"]["f1@threshold"] == pytest.approx(
        example_f1(scores["test"], labels("test"), threshold), rel=1e-9
    )


def test_same_examples_and_tags_as_the_keras_pipeline(data_file):
    data = pipeline.load_tag_data(
        str(data_file), min_tag_train_uses=2, min_word_count=1, batch_size=8, max_train_examples=90
    )
    splits = baseline.text_splits(str(data_file), min_tag_train_uses=2, max_train_examples=90)
    assert splits["tags"] == data.tags
    for name in ("validation", "test"):
        keras_labels = np.concatenate([tags.numpy() for _, tags in getattr(data, name)])
        np.testing.assert_array_equal(baseline.multi_hot(splits[name], data.tags), keras_labels)
    assert len(splits["train"]) == data.num_train == 90
    np.testing.assert_array_equal(
        baseline.multi_hot(splits["train"], data.tags).sum(axis=0), data.tag_train_counts
    )


def test_run_folder_has_config_results_and_the_fitted_baseline(data_file, finished):
    workdir, results = finished
    config = tiny_tags.tfidf_config(data_file)
    assert json.loads((workdir / "config.json").read_text()) == config.to_dict()
    assert json.loads((workdir / "results.json").read_text()) == json.loads(json.dumps(results))
    keras_keys = {f"{m}@{k}" for m in ("precision", "recall", "f1", "ndcg") for k in KS}
    threshold_keys = {f"{m}@threshold" for m in ("precision", "recall", "f1", "tags")}
    assert set(results["test"]) == set(results["validation"]) == keras_keys | threshold_keys
    assert results["model"] == "tfidf"
    assert results["seconds"] >= results["fit_seconds"] + results["data_seconds"] > 0
    tagger = baseline.TfidfTagger.load(workdir / baseline.FILE_NAME)
    test = baseline.text_splits(str(data_file), 2)["test"]
    assert tagger.scores([e["text"] for e in test]).shape == (len(test), results["num_tags"])
    assert runs.files_under(workdir) == ["config.json", "results.json", "tfidf.joblib"]


def test_finished_run_is_not_fitted_again(data_file, finished, monkeypatch, capsys):
    workdir, results = finished

    def fail(*args, **kwargs):
        raise AssertionError("a finished run was fitted again")

    monkeypatch.setattr(baseline.TfidfTagger, "fit", fail)
    again = train.train_and_evaluate(tiny_tags.tfidf_config(data_file), str(workdir))
    assert again == json.loads(json.dumps(results))
    assert "features:" in capsys.readouterr().out


def test_missing_scikit_learn_names_the_extra(data_file, tmp_path, monkeypatch):
    for name in [name for name in sys.modules if name.split(".")[0] == "sklearn"] + ["sklearn"]:
        monkeypatch.setitem(sys.modules, name, None)  # every import of it fails
    with pytest.raises(train.ConfigError) as error:
        train.train_and_evaluate(tiny_tags.tfidf_config(data_file), str(tmp_path / "run"))
    assert str(error.value).startswith(
        "Cannot use --config.model.name=tfidf: The TF-IDF baseline (model 'tfidf') needs "
        "scikit-learn, which cannot be imported"
    )
    assert str(error.value).endswith("Install the optional extra: pip install 'vtrain[baseline]'")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "field, value, message",
    [
        (
            "min_dff",
            2,
            r"--config.model.min_dff: received 2. Expected a field of model 'tfidf': "
            r"one of C, max_features, min_df, n_jobs, ngram_max, sublinear_tf. "
            r"Did you mean 'min_df'\?",
        ),
        (
            "C",
            0.0,
            r"Cannot build model 'tfidf' from --config.model: Invalid C for TfidfTagger: "
            r"received 0.0. Expected a positive number",
        ),
        (
            "ngram_max",
            0,
            r"Invalid ngram_max for TfidfTagger: received 0. Expected an integer >= 1",
        ),
    ],
)
def test_bad_model_fields_are_config_errors(data_file, tmp_path, field, value, message):
    config = tiny_tags.tfidf_config(data_file)
    config.model[field] = value
    with pytest.raises(train.ConfigError, match=message):
        train.train_and_evaluate(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_mistyped_model_name_suggests_tfidf(tmp_path):
    config = tiny_tags.tfidf_config("")
    config.model.name = "tfdif"
    with pytest.raises(
        train.ConfigError,
        match=(
            r"received 'tfdif'. Expected one of cnn, itag, pooled, triplet, vae \(Keras "
            r"models\) or tfidf \(the scikit-learn baseline\). Did you mean 'tfidf'\?"
        ),
    ):
        train.train_and_evaluate(config, str(tmp_path))


def test_compared_side_by_side_with_a_keras_run(data_file, tmp_path, capsys):
    results = train.train_and_compare(
        tiny_tags.keras_config(data_file), tiny_tags.tfidf_config(data_file), str(tmp_path)
    )
    assert set(results) == {"pooled", "baseline tfidf"}
    out = capsys.readouterr().out
    table = out[out.rindex("test ") :].splitlines()
    assert table[0].split() == ["test", "pooled", "baseline", "tfidf"]
    assert [line.split()[0] for line in table[1:]] == [
        f"{m}@{k}" for m in ("recall", "ndcg", "precision", "f1") for k in KS
    ] + ["f1@threshold"]
    comparison = json.loads((tmp_path / "comparison.json").read_text())
    assert comparison["baseline tfidf"]["f1@3"] == results["baseline tfidf"]["test"]["f1@3"]
    assert (tmp_path / "baseline" / baseline.FILE_NAME).is_file()


@pytest.mark.slow
def test_launcher_runs_the_config_and_the_baseline_flag(data_file, tmp_path):
    overrides = [f"--config.data.path={data_file}", "--config.data.min_tag_train_uses=2"]
    result = runs.launch(
        "--config=configs/tfidf.py",
        *overrides,
        "--config.model.n_jobs=1",
        f"--workdir={tmp_path / 'alone'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "features:" in result.stdout
    assert (tmp_path / "alone" / "results.json").is_file()

    result = runs.launch(
        "--config=configs/tiny.py",
        *overrides,
        "--config.data.min_word_count=1",
        "--config.data.batch_size=16",
        "--baseline=configs/tfidf.py",
        *(flag.replace("--config.", "--baseline.") for flag in overrides),
        f"--workdir={tmp_path / 'compared'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "baseline tfidf" in result.stdout
    assert (tmp_path / "compared" / "baseline" / "results.json").is_file()
