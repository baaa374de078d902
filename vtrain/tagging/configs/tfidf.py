"""TF-IDF + logistic regression: the strongest simple baseline (scikit-learn).

`vtrain.tagging.baseline.TfidfTagger`: scikit-learn's
`TfidfVectorizer(min_df=2, sublinear_tf=True, ngram_range=(1, 2),
max_features=200000)` and `OneVsRestClassifier(LogisticRegression(C=10,
solver="liblinear"))` on the raw descriptions, untuned, with exactly the
tags and the train / validation / test examples of the Keras models
(`data.path`, `data.min_tag_train_uses` and `data.max_train_examples` as in
configs/default.py; the other data fields and the train section shape the
Keras models only and are not read). Needs the extra:
`pip install 'vtrain[baseline]'`.

Command (from the repository root):

    python -m vtrain.main --config=configs/tfidf.py --workdir=runs/tfidf

or as the baseline of another run, printed side by side with it:

    python -m vtrain.main --config=configs/default.py --baseline=configs/tfidf.py

Result on this 2-core machine (measured 2026-12-01 on the bundled data of
f77a154, split by source package, sha256 3911752c...; shared with other
jobs, load average about 5, so the two liblinear threads got about one
core): 15 min 12 s wall for the whole command (900 s of fitting 487
regressions on 23,163 descriptions and 173,147 unigram and bigram
features); test F1@3 0.5327 (P@1 0.809, R@5 0.741), validation F1@3
0.5525. Every tag at or above the score threshold chosen on validation
(0.221, the example-based F1's best): test F1 0.6241 (validation 0.6820),
3.3 tags a package. (On the earlier hash-of-package split, which leaked
near-twin descriptions across splits: test 0.564, validation 0.577.) The
fitted baseline, `WORKDIR/tfidf.joblib`, is 346 MB (a float32 weight per
tag and feature); `python -m vtrain.suggest --workdir=WORKDIR ...` uses it.
"""

import ml_collections

from vtrain.tagging import configs


def get_config():
    """The TF-IDF baseline's config (see the module docstring)."""
    config = configs.base("default")  # data and seed as the default run's
    config.model = ml_collections.ConfigDict()
    config.model.name = "tfidf"  # vtrain.tagging.baseline.TfidfTagger (scikit-learn)
    config.model.min_df = 2  # an n-gram is a feature when at least this many training texts hold it
    config.model.ngram_max = 2  # features are n-grams of 1 to ngram_max words
    config.model.max_features = 200_000  # at most this many features, the most frequent first
    config.model.sublinear_tf = True  # term frequency 1 + log(tf) instead of tf
    config.model.C = 10.0  # inverse L2 strength of each tag's logistic regression
    config.model.n_jobs = 2  # threads fitting the tags in parallel (same result for any value)
    return config
