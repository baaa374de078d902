"""Tests of vtrain.vocabulary on the tag classifier, and of its vocabulary report."""

import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from vtrain import vocabulary
from vtrain.layers.variational_embedding import VariationalEmbedding
from vtrain.tagging import results_page, train, vocabulary_report
from vtrain.tagging.models.classifier import PooledClassifier

WORDS = ["vim", "editor", "text", "game", "python", "library", "tool", "font"]
VOCABULARY = ["", "[UNK]", *WORDS]  # ids 2 .. 9
TEXTS = [
    "vim is a text editor",  # "is", "a" are out of vocabulary
    "a python library for fonts",  # "fonts" is not "font"
    "game game GAME tool",
    "",  # all padding
    "unknown words only here",
    "font tool library python text vim editor game extra words beyond",
]


def _vectorizer(sequence_length=8):
    return keras.layers.TextVectorization(
        standardize="lower_and_strip_punctuation",
        output_sequence_length=sequence_length,
        vocabulary=WORDS,
    )


def _model(variational=True):
    model = PooledClassifier(
        vocabulary_size=len(VOCABULARY),
        num_tags=5,
        embedding_dim=4,
        hidden_units=6,
        variational=variational,
    )
    model(np.zeros((1, 3), "int32"))
    layer = model.embedding
    rng = np.random.default_rng(0)
    # Non-zero everywhere (so a zeroed row is visible), some words past the
    # threshold of 3 (so the layer's own mask is exercised too).
    layer.embeddings.assign(rng.normal(size=(len(VOCABULARY), 4)) + 3.0)
    if variational:
        layer.log_alpha.assign(
            np.array(
                [[0.0], [0.0], [-2.0], [5.0], [1.0], [-4.0], [2.0], [3.5], [0.5], [-1.0]], "float32"
            )
        )
    return model


# -------------------------------------------------------------- rankings


def test_frequency_ranking_is_vocabulary_order_after_special_ids():
    assert vocabulary.frequency_ranking(VOCABULARY).tolist() == list(range(2, 10))
    assert vocabulary.frequency_ranking(_vectorizer()).tolist() == list(range(2, 10))


def test_frequency_ranking_refuses_a_vocabulary_without_special_ids():
    with pytest.raises(ValueError, match=r"expected \['', '\[UNK\]', ...\]"):
        vocabulary.frequency_ranking(WORDS)


def test_variational_ranking_sorts_clipped_log_alpha_ties_by_id():
    layer = VariationalEmbedding(7, 2)
    layer.build()
    # ids 2..6: 20 and 12 both clip to 10 (a tie, kept in id order).
    layer.log_alpha.assign(
        np.array([[-9.0], [-9.0], [20.0], [0.5], [12.0], [-30.0], [0.5]], "float32")
    )
    assert vocabulary.variational_ranking(layer).tolist() == [5, 3, 6, 2, 4]


def test_variational_ranking_refuses_a_plain_embedding():
    with pytest.raises(TypeError, match="expected a vtrain.layers.VariationalEmbedding"):
        vocabulary.variational_ranking(keras.layers.Embedding(4, 2))


def test_tfidf_ranking_equals_hand_computed_scores():
    # Three documents over ids 2..5 (0 = padding, 1 = [UNK] counts as a token).
    documents = np.array([[3, 3, 2, 1, 0], [2, 4, 1, 1, 0], [2, 5, 1, 1, 0]])
    n = 3
    idf = {w: math.log((1 + n) / (1 + df)) + 1 for w, df in {2: 3, 3: 1, 4: 1, 5: 1}.items()}
    tf_sum = {2: 3 / 4, 3: 2 / 4, 4: 1 / 4, 5: 1 / 4}
    score = {w: tf_sum[w] * idf[w] / n for w in tf_sum}
    # 4 and 5 tie: id order breaks the tie. Word 2 is the most frequent but
    # in every document, so word 3 (twice in one) outranks it.
    expected = sorted(score, key=lambda w: (-round(score[w], 12), w))
    assert expected == [3, 2, 4, 5]
    # Batches of any size (and (ids, labels) pairs) give the same ranking.
    batches = [(documents[:2], None), (documents[2:], None)]
    assert vocabulary.tfidf_ranking(batches, vocabulary_size=6).tolist() == expected
    assert vocabulary.tfidf_ranking([documents], vocabulary_size=6).tolist() == expected


def test_tfidf_ranking_refuses_ids_outside_the_vocabulary():
    with pytest.raises(ValueError, match=r"expected int \[B, L\] ids in \[0, 4\)"):
        vocabulary.tfidf_ranking([np.array([[2, 7]])], vocabulary_size=4)


# -------------------------------------------------------------- masking


@pytest.mark.parametrize("variational", [True, False])
def test_mask_embedding_zeroes_dropped_rows_and_unk_then_restores(variational):
    model = _model(variational)
    before = [w.numpy().copy() for w in model.weights]
    table_before = model.embedding.embeddings.numpy().copy()
    with vocabulary.mask_embedding(model, [4, 2]):
        table = model.embedding.embeddings.numpy()
        kept = np.flatnonzero(np.any(table != 0, axis=1)).tolist()
        assert kept == [0, 2, 4]  # padding and the kept words; [UNK] zero
        np.testing.assert_array_equal(table[[0, 2, 4]], table_before[[0, 2, 4]])
    for old, new in zip(before, model.weights):
        np.testing.assert_array_equal(old, new.numpy())


def test_mask_embedding_restores_after_an_error():
    model = _model()
    before = model.embedding.embeddings.numpy().copy()
    with pytest.raises(RuntimeError):
        with vocabulary.mask_embedding(model, [2]):
            raise RuntimeError("evaluation failed")
    np.testing.assert_array_equal(model.embedding.embeddings.numpy(), before)


@pytest.mark.parametrize("bad", [[0, 2], [1], [10], [3, 3]])
def test_mask_embedding_refuses_special_out_of_range_or_repeated_ids(bad):
    with pytest.raises(ValueError, match="Received"):
        with vocabulary.mask_embedding(_model(), bad):
            pass


# -------------------------------------------------------------- sweep


def test_sweep_at_full_size_equals_the_model_with_every_word_kept():
    from vtrain.tagging import evaluate

    model = _model()
    ids = _vectorizer()(tf.constant(TEXTS)).numpy()
    labels = np.eye(5, dtype="float32")[np.arange(len(TEXTS)) % 5]
    labels[:, 4] = 1.0
    dataset = tf.data.Dataset.from_tensor_slices((ids, labels)).batch(4)
    ranking = vocabulary.frequency_ranking(VOCABULARY)
    curve = vocabulary.sweep(
        model, list(dataset), ranking, sizes=[1, 3, 8], measure=vocabulary_report.ranking_measure(3)
    )
    # The full size keeps every word; only [UNK] is zeroed (TEXTS have
    # out-of-vocabulary words, so the reference is masked too).
    with vocabulary.mask_embedding(model, ranking):
        assert curve["f1_at_3"][-1] == evaluate.ranking_results(model, dataset, ks=(1, 3))["f1@3"]
    assert set(curve) == {"sizes", "f1_at_3", "precision_at_1"}
    assert len(curve["f1_at_3"]) == 3
    with pytest.raises(ValueError, match=r"expected sizes in \[1, 8\]"):
        vocabulary.sweep(
            model, list(dataset), ranking, sizes=[9], measure=vocabulary_report.ranking_measure(3)
        )


# -------------------------------------------------------------- summarise


def test_summarise_equals_hand_computed_auc_and_sizes():
    sizes = [1, 10, 100, 1000]
    curves = {
        "variational": {"sizes": sizes, "f1_at_3": [0.30, 0.45, 0.50, 0.50]},
        "frequency": {"sizes": sizes, "f1_at_3": [0.10, 0.20, 0.44, 0.48]},
    }
    summary = vocabulary.summarise(curves, "f1_at_3", reference=0.50)
    # x = log10(size) / 3 = 0, 1/3, 2/3, 1; y = F1 / 0.5 (the best).
    auc_variational = (1 / 3) * ((0.6 + 0.9) / 2 + (0.9 + 1.0) / 2 + (1.0 + 1.0) / 2)
    auc_frequency = (1 / 3) * ((0.2 + 0.4) / 2 + (0.4 + 0.88) / 2 + (0.88 + 0.96) / 2)
    methods = summary["methods"]
    assert methods["variational"]["auc"] == pytest.approx(auc_variational)
    assert methods["frequency"]["auc"] == pytest.approx(auc_frequency)
    # Within 0.005 of 0.50: variational from 100 words, frequency never;
    # within 0.03 (>= 0.47): variational from 100, frequency at 1000 only.
    assert methods["variational"]["size_at_drop"] == {"0.5": 100, "1": 100, "3": 100}
    assert methods["frequency"]["size_at_drop"] == {"0.5": None, "1": None, "3": 1000}
    assert summary["full_size"] == 1000 and summary["best"] == 0.5


# -------------------------------------------------------------- export

_RELOAD = """
import sys, json, numpy as np
from vtrain import vocabulary
import vtrain.tagging.models.classifier  # registers the classes
texts = json.loads(sys.argv[1])
for folder in sys.argv[2:]:
    model, vectorizer = vocabulary.load_pruned(folder)
    np.save(folder + ".npy", model(vectorizer(texts)).numpy())
    print(model.embedding.input_dim)
"""


def test_export_round_trip_in_a_fresh_process_is_exact(tmp_path):
    vectorizer = _vectorizer()
    keep_ids = [9, 2, 5, 7, 3]  # any order; 3 and 7 are past the threshold
    masked, folders = [], []
    for variational in (True, False):
        model = _model(variational)
        with vocabulary.mask_embedding(model, keep_ids):
            masked.append(model(vectorizer(tf.constant(TEXTS))).numpy())
        folders.append(str(tmp_path / f"pruned-{variational}"))
        sizes = vocabulary.export_pruned(model, vectorizer, keep_ids, folders[-1])
        assert sizes["embedding_rows_before"] == 10
        assert sizes["embedding_rows_after"] == 7
        assert sizes["embedding_bytes_after"] == 7 * 4 * 4
        assert 0 < sizes["model_bytes_after"] <= sizes["model_bytes_before"]

    # One fresh process reloads both: nothing of this process's state helps.
    run = subprocess.run(
        [sys.executable, "-c", _RELOAD, json.dumps(TEXTS), *folders],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split()[-2:] == ["7", "7"]
    for folder, expected in zip(folders, masked):
        np.testing.assert_allclose(np.load(folder + ".npy"), expected, atol=1e-5, rtol=0)


def _tiny_data(tmp_path):
    """(tiny config on a 60-example JSONL file, its TagData)."""
    from configs import tiny
    from vtrain.tagging.data import pipeline

    path = tmp_path / "tags.jsonl"
    with open(path, "w") as f:
        for i in range(60):
            words = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(i % 4 + 2))
            f.write(
                json.dumps(
                    {"id": i, "text": f"{words} w{i % 7}", "tags": [f"t{i % 3}", f"t{3 + i % 2}"]}
                )
                + "\n"
            )
    config = tiny.get_config()
    config.data.path = str(path)
    config.data.min_tag_train_uses = 1
    config.data.max_vocabulary_size = 0
    data = pipeline.load_tag_data(
        str(path), sequence_length=config.data.sequence_length, min_tag_train_uses=1
    )
    return config, data


def _tiny_model(config, data, variational=True):
    """An untrained classifier for `data`; every other word past the threshold."""
    config = config.copy_and_resolve_references()
    config.model.variational = variational
    model = train.build_model(config, data)
    model(next(iter(data.test))[0])
    if variational:
        log_alpha = np.zeros((data.vocabulary_size, 1), "float32")
        log_alpha[2::2] = 5.0
        model.embedding.log_alpha.assign(log_alpha)
    return model


def test_compress_workdir_writes_reports_and_an_exact_export(tmp_path):
    from vtrain import io

    config, data = _tiny_data(tmp_path)
    workdir = tmp_path / "run"
    (workdir / "checkpoints").mkdir(parents=True)
    io.atomic_write_json(workdir / "config.json", config.to_dict())
    model = _tiny_model(config, data)
    io.save_model(model, str(workdir / "checkpoints" / "best.keras"))

    report = train.compress_workdir(str(workdir), num_sizes=5)
    for name in (
        "vocabulary.json",
        "vocabulary.md",
        "vocabulary.png",
        "pruned/model.keras",
        "pruned/vocabulary.json",
    ):
        assert (workdir / name).is_file(), name
    assert set(report["curves"]) == {"variational", "frequency", "tfidf"}
    num_words = data.vocabulary_size - 2
    assert report["pruned"]["kept_words"] == len(range(3, data.vocabulary_size, 2))
    assert report["pruned"]["max_abs_score_difference"] <= 1e-5
    # At the full size every ranking keeps the same words.
    last = {m: c["f1_at_3"][-1] for m, c in report["curves"].items()}
    assert len(set(last.values())) == 1, last
    assert report["summary"]["full_size"] == num_words
    assert "| variational |" in (workdir / "vocabulary.md").read_text()
    # A baseline's report is read when it matches, re-measured when it does not.
    assert train.baseline_report(str(workdir), num_sizes=5) == json.loads(json.dumps(report))
    again = train.baseline_report(str(workdir), num_sizes=3, split="validation")
    assert (again["num_sizes"], again["split"]) == (3, "validation")
    assert vocabulary_report.read_report(workdir) == again


def test_export_refuses_a_vectorizer_of_another_size(tmp_path):
    vectorizer = keras.layers.TextVectorization(vocabulary=WORDS[:3])
    with pytest.raises(ValueError, match="Pass the vectorizer the model was trained with"):
        vocabulary.export_pruned(_model(), vectorizer, [2], str(tmp_path))


def test_compress_run_with_a_baseline_uses_its_curves_and_reference(tmp_path):
    from vtrain.tagging import evaluate

    config, data = _tiny_data(tmp_path)
    plain = _tiny_model(config, data, variational=False)
    baseline = vocabulary_report.compress_run(plain, data, str(tmp_path / "baseline"), num_sizes=5)
    assert set(baseline["curves"]) == {"frequency", "tfidf"}
    assert baseline["baseline"] is None
    assert baseline["pruned"]["kept_words"] == data.vocabulary_size - 2

    model = _tiny_model(config, data)
    report = vocabulary_report.compress_run(
        model,
        data,
        str(tmp_path / "run"),
        num_sizes=5,
        baseline=vocabulary_report.read_report(tmp_path / "baseline"),
    )
    assert set(report["curves"]) == {"variational", "frequency", "tfidf"}
    for method in ("frequency", "tfidf"):
        assert report["curves"][method] == baseline["curves"][method]
    reference = evaluate.ranking_results(plain, data.test, ks=(1, 3))["f1@3"]
    assert report["summary"]["reference"] == reference
    assert vocabulary_report.reference_f1(report) == reference
    assert (
        report["full_vocabulary"]["f1_at_3"]
        == evaluate.ranking_results(model, data.test, ks=(1, 3))["f1@3"]
    )
    assert report["baseline"]["workdir"] == str(tmp_path / "baseline")
    page = results_page.results_page(report, "vocabulary.png")
    assert "the non-variational full-vocabulary baseline" in page

    with pytest.raises(ValueError, match="Train both on the same data config"):
        vocabulary_report.compress_run(
            model, data, str(tmp_path / "run"), num_sizes=4, baseline=baseline
        )
    with pytest.raises(ValueError, match="has split='test'; expected 'validation'"):
        vocabulary_report.compress_run(
            model, data, str(tmp_path / "run"), num_sizes=5, split="validation", baseline=baseline
        )
    with pytest.raises(FileNotFoundError, match="expected the report of a finished"):
        vocabulary_report.read_report(tmp_path / "nothing")


@pytest.mark.slow
def test_launcher_baseline_flow_writes_both_reports_from_one_command(tmp_path):
    """`vtrain.main --config=tiny --baseline=tiny (plain)`: issue 4's flow, shrunk."""
    from configs import tiny

    config = tiny.get_config()
    baseline_config = tiny.get_config()
    baseline_config.model.variational = False
    workdir = tmp_path / "run"
    train.train_and_compare(config, baseline_config, str(workdir))

    baseline = vocabulary_report.read_report(workdir / "baseline")
    report = vocabulary_report.read_report(workdir)
    assert set(baseline["curves"]) == {"frequency", "tfidf"}
    assert set(report["curves"]) == {"variational", "frequency", "tfidf"}
    assert report["curves"]["tfidf"] == baseline["curves"]["tfidf"]
    sizes = baseline["curves"]["frequency"]["sizes"]
    assert report["curves"]["variational"]["sizes"] == sizes
    assert len(sizes) > 10 and sizes[-1] == report["summary"]["full_size"] == 1998
    results = json.loads((workdir / "baseline" / "results.json").read_text())
    assert vocabulary_report.reference_f1(report) == results["test"]["f1@3"]
    assert (
        report["full_vocabulary"]["f1_at_3"]
        == json.loads((workdir / "results.json").read_text())["test"]["f1@3"]
    )
    assert report["pruned"]["max_abs_score_difference"] <= 1e-5
    for folder in (workdir, workdir / "baseline"):
        for name in ("vocabulary.md", "vocabulary.png", "pruned/model.keras"):
            assert (folder / name).is_file(), folder / name


def test_export_sizes_leave_out_the_optimizer_state(tmp_path):
    model = _model()
    model.compile(optimizer="adam")
    ids = _vectorizer()(tf.constant(TEXTS)).numpy()
    model.fit(ids, np.ones((len(TEXTS), 5), "float32"), epochs=1, verbose=0)
    assert model.optimizer.variables  # a .keras file of the model would hold them
    sizes = vocabulary.export_pruned(model, _vectorizer(), range(2, 10), str(tmp_path))
    # Every word kept: the pruned model has the same weights, so the same size.
    assert sizes["model_bytes_after"] == sizes["model_bytes_before"]
