"""The serving export: a SavedModel that TensorFlow alone runs, giving vtrain.suggest's tags and scores."""

import json
import subprocess
import sys

import pytest

from tests import runs
from tests.tagging import tiny_tags
from vtrain.tagging import serving, suggest, train

TEXTS = [
    "a fast web server for http requests",
    "Vim, a text editor (with syntax)",
    "arcade game: score a level",
    "ünïcödé mail inbox ✉",
    "",
]

# Run in a fresh interpreter: TensorFlow only.
LOAD = """
import json, sys
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serve"]
outputs = serve(texts=tf.constant(json.loads(sys.argv[2])))
assert "vtrain" not in sys.modules, sorted(m for m in sys.modules if m.startswith("vtrain"))
print(json.dumps({"tags": [[t.decode("utf-8") for t in row] for row in outputs["tags"].numpy()],
                  "scores": outputs["scores"].numpy().tolist(),
                  "dtypes": [outputs["tags"].dtype.name, outputs["scores"].dtype.name]}))
"""


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return tiny_tags.write(tmp_path_factory.mktemp("data") / "tags.jsonl")


@pytest.mark.parametrize(
    "make_config", [tiny_tags.keras_config, tiny_tags.cnn_config], ids=["pooled", "cnn"]
)
def test_saved_model_without_vtrain_gives_suggests_tags_and_scores(
    make_config, data_file, tmp_path
):
    workdir = tmp_path / "run"
    results = train.train_and_evaluate(make_config(data_file), str(workdir))
    export = workdir / serving.FOLDER
    assert (export / "saved_model.pb").is_file()
    assert [p.name for p in workdir.iterdir() if serving._PARTIAL in p.name] == []

    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS), encoding="utf-8")
    assert (
        suggest.main(
            [
                f"--workdir={workdir}",
                f"--input={source}",
                f"--output={tmp_path / 'out.jsonl'}",
                f"--k={serving.K}",
            ]
        )
        == 0
    )
    expected = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]

    result = subprocess.run(
        [sys.executable, "-c", LOAD, str(export), json.dumps(TEXTS)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env=runs.environment(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["dtypes"] == ["string", "float32"]
    assert results["num_tags"] >= serving.K
    assert served["tags"] == [line["tags"] for line in expected]
    for scores, line in zip(served["scores"], expected):
        assert scores == pytest.approx(line["scores"], abs=1e-6)


def test_export_replaces_the_previous_one_and_clears_partial_folders(tmp_path):
    import keras

    from vtrain.tagging.models.classifier import PooledClassifier

    vectorizer = keras.layers.TextVectorization(
        vocabulary=["web", "mail"], output_sequence_length=4
    )
    model = PooledClassifier(vocabulary_size=4, num_tags=3, embedding_dim=2, hidden_units=0)
    path = tmp_path / "serving"
    serving.export(model, vectorizer, ["a", "b", "c"], path, k=2)
    (tmp_path / f"serving{serving._PARTIAL}killed").mkdir()  # left by a killed export
    serving.export(model, vectorizer, ["x", "y", "z"], path, k=5)  # k capped at 3 tags
    assert sorted(p.name for p in tmp_path.iterdir()) == ["serving"]
    import tensorflow as tf

    outputs = tf.saved_model.load(str(path)).signatures["serve"](texts=tf.constant(["web"]))
    assert outputs["tags"].shape.as_list() == [1, 3]
    assert {t.decode() for t in outputs["tags"].numpy()[0]} == {"x", "y", "z"}
