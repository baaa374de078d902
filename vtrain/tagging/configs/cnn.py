"""CNN: a Kim-style convolutional tag classifier over variational word embeddings.

Kim (2014): parallel 1-D convolutions of widths 2, 3 and 4 over the word
vectors, max over time, one logit per tag (`vtrain.tagging.models.classifier.
CNNClassifier`); the data and training settings are the default config's,
with shorter texts (the convolutions cost grows with the length).

Command (from the repository root), with the TF-IDF baseline
(configs/tfidf.py) trained on the same split and printed beside it:

    python -m vtrain.main --config=configs/cnn.py --baseline=configs/tfidf.py

Result on the source-package split (2026-12-02): test F1@3 0.4181 (P@1
0.653, R@5 0.602) at epoch 8 of 8 (validation F1@3 0.4492, still rising),
against 0.5327 for the baseline (P@1 0.809); 23,730 of 31,310 words kept
(24.2% dropped). Far below the pooled default too (configs/default.py,
0.5164). The command took 29 min wall while three other jobs shared the
2-core machine (load about 8); this model alone took 4 min 21 s at load
about 3. Its [UNK] vector is learned (`unknown_words`, not tuned here).
The old split's figures: docs/results.md, History.
"""

import ml_collections

from vtrain.tagging import configs


def get_config():
    """The CNN run's config (see the module docstring)."""
    # configs/default.py's data and training sections, with the changes below.
    config = configs.base("default")
    config.data.sequence_length = 96  # tokens kept per description (the first ones); the convolutions cost grows with it
    config.train.num_epochs = 8  # passes over the training split
    config.train.learning_rate = 1e-3  # at epoch 0

    config.model = ml_collections.ConfigDict()
    config.model.name = "cnn"  # vtrain.tagging.models.classifier.CNNClassifier
    config.model.variational = True  # VariationalEmbedding (learns which words to drop) or a plain one
    config.model.threshold = 3.0  # words with log_alpha >= threshold are dropped at inference
    config.model.embedding_dim = 128  # word vector size
    config.model.filter_widths = (2, 3, 4)  # convolution window sizes, in tokens
    config.model.num_filters = 128  # filters per window size
    config.model.dropout = 0.3  # dropout on the max-pooled features
    return config
