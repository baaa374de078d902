"""CNN: a Kim-style convolutional tag classifier over variational word embeddings.

Kim (2014): parallel 1-D convolutions of widths 2, 3 and 4 over the word
vectors, max over time, one logit per tag (`vtrain.models.classifier.
CNNClassifier`); the data and training settings are the default config's,
with shorter texts (the convolutions cost grows with the length).

Command (from the repository root):

    python -m vtrain.main --config=configs/cnn.py

Result on this 2-core machine (shared with other jobs, load average 6-8):
7 min 42 s wall, test F1@3 0.449 (P@1 0.709) at epoch 8 of 8 (validation
F1@3 0.458, still rising slowly); 24,038 of 32,046 words kept. Far below
the pooled model of configs/default.py (0.543 in less time): on these
descriptions the words matter more than their order. Chosen from two short
probes only (learning rate 3e-3: validation F1@3 0.414 after 2 epochs, 1e-3:
0.432), not tuned further; each epoch costs about 55 s here.
"""

import ml_collections


def get_config():
    """The CNN run's config (see the module docstring)."""
    config = ml_collections.ConfigDict()
    config.seed = 0  # seeds the weights, dropout, embedding noise and shuffle
    config.strategy = "none"  # none | mirrored | multi_worker (see docs/reliability.md)

    config.data = ml_collections.ConfigDict()
    config.data.path = ""  # "" = bundled Debian dataset; else a .jsonl/.json/.tsv(.gz) file with text and tags
    config.data.min_tag_train_uses = 5  # tags used by fewer training examples are dropped
    config.data.min_word_count = 2  # words seen fewer times in the training texts become [UNK]
    config.data.max_vocabulary_size = 0  # cap on vocabulary rows, padding and [UNK] included; 0 = no cap
    config.data.sequence_length = 96  # tokens kept per description (the first ones); the convolutions cost grows with it
    config.data.lowercase = True  # lower-case texts before splitting into words
    config.data.strip_punctuation = True  # remove ASCII punctuation before splitting
    config.data.batch_size = 64  # examples per training step
    config.data.eval_batch_size = 512  # examples per validation / test batch
    config.data.max_train_examples = 0  # use only the first N training examples; 0 = all

    config.model = ml_collections.ConfigDict()
    config.model.name = "cnn"  # vtrain.models.classifier.CNNClassifier
    config.model.variational = True  # VariationalEmbedding (learns which words to drop) or a plain one
    config.model.threshold = 3.0  # words with log_alpha >= threshold are dropped at inference
    config.model.embedding_dim = 128  # word vector size
    config.model.filter_widths = (2, 3, 4)  # convolution window sizes, in tokens
    config.model.num_filters = 128  # filters per window size
    config.model.dropout = 0.3  # dropout on the max-pooled features

    config.train = ml_collections.ConfigDict()
    config.train.num_epochs = 8  # passes over the training split
    config.train.optimizer = "lazy_adam"  # vtrain.optimizers name; lazy_adam updates only the seen words
    config.train.learning_rate = 1e-3  # at epoch 0
    config.train.learning_rate_decay = 0.9  # learning rate factor per epoch; 1 = constant
    config.train.kl_scale = 30.0  # KL weight = kl_scale / num_train (1 = the ELBO)
    config.train.kl_warmup_epochs = 5  # KL weight rises linearly from 0 over these epochs
    return config
