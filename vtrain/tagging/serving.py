"""Serving export: a TensorFlow SavedModel from raw text to the top-k tags.

`export(model, vectorizer, tags, path)` writes a SavedModel with one
signature, `serve`: a batch of raw strings (`tf.string [None]`, input name
`texts`) -> `tags` (`tf.string [None, k]`, best first) and `scores`
(`float32 [None, k]`, the sigmoid of each tag's logit). The
`TextVectorization` of the run and the classifier's weights are inside, so
it loads and runs with TensorFlow alone (no vtrain, no Keras code):

    import tensorflow as tf
    serve = tf.saved_model.load("RUN/serving").signatures["serve"]
    serve(texts=tf.constant(["A fast web server"]))  # {"tags": ..., "scores": ...}

`vtrain.tagging.train` writes it to `WORKDIR/serving/` at the end of every
run of a word classifier (pooled, cnn), with the best checkpoint's weights;
the ranking and the scores are those of `python -m vtrain.suggest`.

>>> import keras, tempfile
>>> from vtrain.tagging.models.classifier import PooledClassifier
>>> vectorizer = keras.layers.TextVectorization(vocabulary=["web", "mail"],
...                                             output_sequence_length=4)
>>> model = PooledClassifier(vocabulary_size=4, num_tags=3, embedding_dim=2,
...                          hidden_units=0)
>>> path = export(model, vectorizer, ["a", "b", "c"], tempfile.mkdtemp() + "/serving", k=2)
>>> outputs = tf.saved_model.load(path).signatures["serve"](texts=tf.constant(["web mail"]))
>>> outputs["tags"].shape.as_list(), outputs["scores"].dtype.name
([1, 2], 'float32')
"""

import glob
import json
import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from vtrain import io as vtrain_io

K = 5  # tags returned per text (fewer when the run has fewer tags)
FOLDER = "serving"  # the SavedModel's folder in a run's workdir
TAGGER_FILE = "tagger.json"  # the run's tag names and text vectorizer, for vtrain.suggest
_PARTIAL = ".partial-"  # suffix of a folder being written


class TagServer(tf.Module):
    """Raw strings -> top-k tag names and scores, as one `tf.function`.

    Args:
        model: a word classifier (its call maps token ids `[B, L]` to one
            logit per tag), built.
        vectorizer: the run's `keras.layers.TextVectorization`.
        tags: tag names, in the order of the model's logits.
        k: tags per text.
    """

    def __init__(self, model, vectorizer, tags, k=K):
        super().__init__(name="tag_server")
        self.model = model
        self.vectorizer = vectorizer
        self.tag_names = tf.constant([str(tag) for tag in tags])
        self.k = int(min(k, len(tags)))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    def serve(self, texts):
        """`texts` `tf.string [B]` -> `{"tags": string [B, k], "scores": float32 [B, k]}`."""
        logits = self.model(self.vectorizer(texts), training=False)
        # Ranked on the logits: sigmoids of large logits round to equal floats.
        top = tf.math.top_k(logits, k=self.k, sorted=True)
        return {"tags": tf.gather(self.tag_names, top.indices), "scores": tf.sigmoid(top.values)}


def export(model, vectorizer, tags, path, k=K):
    """Writes the SavedModel of `TagServer(model, vectorizer, tags, k)` to `path`.

    The weights are copied into a fresh instance of the model's class
    (`from_config` + `set_weights`), so a model built under a
    `tf.distribute` strategy exports plain variables. The folder is written
    next to `path` and renamed over it at the end: a killed export leaves
    the previous `path` (or none), never a partial one; the partial folder
    is removed by the next export.

    Returns:
        `path`.
    """
    path = os.path.abspath(os.fspath(path))
    for stale in glob.glob(glob.escape(path) + _PARTIAL + "*"):
        shutil.rmtree(stale, ignore_errors=True)
    sample = np.zeros((1, int(vectorizer.get_config()["output_sequence_length"] or 1)), "int32")
    if not model.built:
        model(sample)
    copy = type(model).from_config(model.get_config())
    copy(sample)
    copy.set_weights(model.get_weights())
    server = TagServer(copy, vectorizer, tags, k=k)
    partial = tempfile.mkdtemp(dir=os.path.dirname(path), prefix=os.path.basename(path) + _PARTIAL)
    try:
        tf.saved_model.save(server, partial, signatures={"serve": server.serve})
        if os.path.isdir(path):
            shutil.rmtree(path)
        os.replace(partial, path)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return path


def write_tagger(workdir, model_name, tags, vectorizer):
    """Writes `WORKDIR/tagger.json`: the model name, the tag names and the vectorizer's config.

    What `vtrain.suggest` needs besides the best checkpoint to turn raw text
    into tag scores, without rebuilding the run's data.

    Example:
    >>> import tempfile
    >>> workdir = tempfile.mkdtemp()
    >>> vectorizer = keras.layers.TextVectorization(vocabulary=["web"])
    >>> write_tagger(workdir, "pooled", ["web::server"], vectorizer)
    >>> name, tags, again = read_tagger(workdir)
    >>> name, tags, [str(word) for word in again.get_vocabulary()]
    ('pooled', ['web::server'], ['', '[UNK]', 'web'])
    """
    vtrain_io.atomic_write_json(
        os.path.join(workdir, TAGGER_FILE),
        {
            "model": model_name,
            "tags": [str(tag) for tag in tags],
            "vectorizer": vectorizer.get_config(),
        },
        sort_keys=False,
    )


def read_tagger(workdir):
    """`(model name, tags, TextVectorization)` from `WORKDIR/tagger.json`; None if missing."""
    path = os.path.join(workdir, TAGGER_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        state = json.load(f)
    vectorizer = keras.layers.TextVectorization.from_config(state["vectorizer"])
    return state["model"], list(state["tags"]), vectorizer
