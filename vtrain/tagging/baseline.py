"""The strongest simple baseline: TF-IDF n-grams + one logistic regression per tag.

scikit-learn's `TfidfVectorizer` (unigrams and bigrams, sublinear term
frequencies) and `OneVsRestClassifier(LogisticRegression(solver="liblinear"))`
on the raw texts, with exactly the tags and the train / validation / test
examples the Keras models get (`text_splits`). `vtrain.tagging.train` runs it
for `config.model.name == "tfidf"` (configs/tfidf.py) and writes the same
`results.json` metrics as for the Keras models.

scikit-learn is an optional extra: `pip install 'vtrain[baseline]'`. This
module imports it only when a `TfidfTagger` is built.

>>> texts = ["a text editor", "a web server", "an editor for text", "web browser"]
>>> tags = ["editor", "web"]
>>> labels = multi_hot([{"tags": ["editor"]}, {"tags": ["web"]}, {"tags": ["editor"]},
...                     {"tags": ["web"]}], tags)
>>> tagger = TfidfTagger(min_df=1).fit(texts, labels, tags)
>>> scores = tagger.scores(["a small editor", "web proxy"])
>>> scores.shape, [tagger.tags[i] for i in scores.argmax(axis=1)]
((2, 2), ['editor', 'web'])
"""

import os
import warnings

import numpy as np

from vtrain import io as vtrain_io
from vtrain.tagging.data import pipeline

NAME = "tfidf"  # config.model.name of this baseline
FILE_NAME = "tfidf.joblib"  # the fitted baseline, in the run's workdir
INSTALL = "pip install 'vtrain[baseline]'"


def text_splits(path=None, min_tag_train_uses=5, max_train_examples=0):
    """The raw examples of each split, exactly as `pipeline.load_tag_data` builds them.

    The same calls as `load_tag_data`: `debtags.load_splits` (split by
    group / package, tags with fewer than `min_tag_train_uses` training
    uses removed, examples left without a tag dropped), then only the first
    `max_train_examples` training examples (0 = all). The tag set is the
    one of the whole training split, before that cut, as in `load_tag_data`.
    (`vtrain.tagging.data.pipeline` does not expose this step on its own;
    tests/tagging/test_tfidf.py checks the two stay the same.)

    Returns:
        `{"train": [...], "validation": [...], "test": [...], "tags": [...]}`:
        lists of example dicts (`text`, `tags`, ...) in file order, and the
        sorted tag names.

    Raises:
        vtrain.tagging.data.loaders.DataError: the file is missing or malformed.
        ValueError: a split is empty.

    Example:
    >>> splits = text_splits(max_train_examples=10)
    >>> len(splits["train"]), sorted(splits["train"][0])[:2]
    (10, ['group', 'package'])
    """
    return pipeline.example_splits(path, min_tag_train_uses, max_train_examples)


def multi_hot(examples, tags):
    """`[N, T]` float32 0/1 labels of `examples` over `tags` (as `TagData`'s).

    Example:
    >>> multi_hot([{"tags": ["b"]}, {"tags": ["a", "b"]}], ["a", "b"])
    array([[0., 1.],
           [1., 1.]], dtype=float32)
    """
    index = {tag: i for i, tag in enumerate(tags)}
    labels = np.zeros((len(examples), len(tags)), np.float32)
    for row, example in enumerate(examples):
        labels[row, [index[tag] for tag in example["tags"]]] = 1.0
    return labels


def _sklearn():
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier
    except ImportError as error:
        raise ImportError(
            f"The TF-IDF baseline (model {NAME!r}) needs scikit-learn, which cannot "
            f"be imported ({error}). Install the optional extra: {INSTALL}"
        ) from error
    return TfidfVectorizer, LogisticRegression, OneVsRestClassifier


class TfidfTagger:
    """TF-IDF features + one L2-regularised logistic regression per tag.

    Args:
        min_df: an n-gram becomes a feature when at least this many
            training texts contain it.
        ngram_max: n-grams of 1 to `ngram_max` words.
        max_features: at most this many features, the most frequent first.
        sublinear_tf: term frequency `1 + log(tf)` instead of `tf`.
        C: inverse regularisation strength of each logistic regression.
        n_jobs: threads fitting the tags' regressions in parallel (the
            result does not depend on it).
        random_state: liblinear's seed.

    Raises:
        ImportError: scikit-learn is not installed (the message names the extra).
        ValueError: an argument is out of range.
    """

    def __init__(
        self,
        min_df=2,
        ngram_max=2,
        max_features=200_000,
        sublinear_tf=True,
        C=10.0,
        n_jobs=1,
        random_state=0,
    ):
        for name, value, minimum in (
            ("min_df", min_df, 1),
            ("ngram_max", ngram_max, 1),
            ("max_features", max_features, 1),
            ("n_jobs", n_jobs, 1),
        ):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, np.integer))
                or value < minimum
            ):
                raise ValueError(
                    f"Invalid {name} for TfidfTagger: received {value!r}. "
                    f"Expected an integer >= {minimum}."
                )
        if isinstance(C, bool) or not isinstance(C, (int, float)) or not C > 0:
            raise ValueError(
                f"Invalid C for TfidfTagger: received {C!r}. Expected a "
                "positive number (larger = weaker regularisation), e.g. 10.0."
            )
        tfidf, logistic, one_vs_rest = _sklearn()
        self.tags = self.weights = self.bias = self.constant = None  # set by fit
        self.vectorizer = tfidf(
            min_df=int(min_df),
            sublinear_tf=bool(sublinear_tf),
            ngram_range=(1, int(ngram_max)),
            max_features=int(max_features),
        )
        self.classifier = one_vs_rest(
            logistic(C=float(C), solver="liblinear", random_state=random_state), n_jobs=int(n_jobs)
        )

    @property
    def num_features(self):
        """Features (n-grams) of the fitted vectorizer."""
        return len(self.vectorizer.vocabulary_)

    def fit(self, texts, labels, tags):
        """Fits the vectorizer and the regressions on `texts` and `[N, T]` 0/1 `labels`.

        `tags` names the T label columns. A tag with no positive (or no
        negative) training example gets a constant score, as scikit-learn
        gives it (its warning about it is silenced: with
        `max_train_examples` it is expected).

        The fitted regressions are kept as one float32 `[T, F]` weight
        matrix, a bias per tag and the constant tags (`scores` reads only
        these): scikit-learn's one float64 estimator per tag takes twice the
        memory and disk (674 MB for the bundled data's 487 tags and 173,147
        features; 337 MB here). Returns self.
        """
        labels = np.asarray(labels)
        if labels.shape != (len(texts), len(tags)) or not len(tags):
            raise ValueError(
                f"Invalid labels for TfidfTagger.fit: received shape "
                f"{labels.shape} for {len(texts)} texts and {len(tags)} tags. "
                "Expected one row per text, one column per tag (at least one)."
            )
        import joblib

        features = self.vectorizer.fit_transform(list(texts)).astype(np.float64)
        # liblinear's wrapper sorts a CSR matrix's indices in place when they
        # are not sorted; from two threads at once that corrupts the matrix
        # ("indices array has fewer than nnz elements", then a crash).
        features.sort_indices()
        # Threads, not processes: liblinear releases the GIL, and loky's
        # read-only memory maps make it fail ("WRITEBACKIFCOPY base is read-only").
        with warnings.catch_warnings(), joblib.parallel_config(backend="threading"):
            warnings.filterwarnings("ignore", message="Label not .* is present in all")
            self.classifier.fit(features, labels.astype(np.int64))
        self.tags = [str(tag) for tag in tags]
        self.weights = np.zeros((len(tags), self.num_features), np.float32)
        self.bias = np.zeros(len(tags), np.float64)
        self.constant = np.full(len(tags), np.nan)  # NaN: not a constant tag
        for row, estimator in enumerate(self.classifier.estimators_):
            if hasattr(estimator, "coef_"):
                self.weights[row] = estimator.coef_[0]
                self.bias[row] = estimator.intercept_[0]
            else:  # scikit-learn's _ConstantPredictor: the label every example had
                self.constant[row] = float(np.ravel(estimator.y_)[0])
        self.classifier = None  # the weights above are the model now
        return self

    def scores(self, texts):
        """`[N, T]` float64: each tag's probability, `sigmoid(x . w + b)` (`x`: the TF-IDF row).

        What scikit-learn's `predict_proba` gives, but for the float32 weights
        (about 1e-7 apart).
        """
        features = self.vectorizer.transform(list(texts)).astype(np.float32)
        logits = np.asarray(features @ self.weights.T, np.float64) + self.bias
        scores = 1.0 / (1.0 + np.exp(-logits))
        constant = ~np.isnan(self.constant)
        scores[:, constant] = self.constant[constant]
        return scores

    def save(self, path):
        """Writes the fitted vectorizer, weights and tags to `path` (joblib), atomically."""
        import joblib
        import sklearn

        state = {
            "tags": self.tags,
            "vectorizer": self.vectorizer,
            "weights": self.weights,
            "bias": self.bias,
            "constant": self.constant,
            "sklearn_version": sklearn.__version__,
        }
        with vtrain_io.atomic_path(path) as tmp:
            joblib.dump(state, tmp)

    @classmethod
    def load(cls, path):
        """The fitted `TfidfTagger` that `save` wrote to `path`."""
        _sklearn()
        import joblib

        state = joblib.load(os.fspath(path))
        tagger = cls.__new__(cls)
        tagger.classifier = None
        for name in ("tags", "vectorizer", "weights", "bias", "constant"):
            setattr(tagger, name, state[name])
        return tagger
