"""Tiny: the default model, shrunk to run end to end in seconds (for tests).

Command (from the repository root):

    python -m vtrain.main --config=configs/tiny.py --workdir=/tmp/vtrain-tiny

Result on this 2-core machine (shared, load average ~9.5): 24 s wall, test
F1@3 0.098 (P@1 0.294): two epochs on 2,000 examples learn little beyond the
tag frequencies; the config exists to exercise the whole run (data,
training, checkpoints, resume, results.json) quickly, not to score.
"""

import ml_collections


def get_config():
    """The tiny run's config (see the module docstring)."""
    config = ml_collections.ConfigDict()
    config.seed = 0  # seeds the weights, dropout, embedding noise and shuffle
    config.strategy = "none"  # none | mirrored | multi_worker (see docs/reliability.md)

    config.data = ml_collections.ConfigDict()
    config.data.path = ""  # "" = bundled Debian dataset; else a .jsonl/.json/.tsv(.gz) file with text and tags
    config.data.min_tag_train_uses = 5  # tags used by fewer training examples are dropped
    config.data.min_word_count = 2  # words seen fewer times in the training texts become [UNK]
    config.data.max_vocabulary_size = 2000  # cap on vocabulary rows, padding and [UNK] included; 0 = no cap
    config.data.sequence_length = 32  # tokens kept per description (the first ones)
    config.data.lowercase = True  # lower-case texts before splitting into words
    config.data.strip_punctuation = True  # remove ASCII punctuation before splitting
    config.data.batch_size = 128  # examples per training step
    config.data.eval_batch_size = 1024  # examples per validation / test batch
    config.data.max_train_examples = 2000  # use only the first N training examples; 0 = all

    config.model = ml_collections.ConfigDict()
    config.model.name = "pooled"  # "pooled" (embedding mean + MLP), "cnn" or "itag"
    config.model.variational = True  # VariationalEmbedding (learns which words to drop) or a plain one
    config.model.threshold = 3.0  # words with log_alpha >= threshold are dropped at inference
    config.model.embedding_dim = 16  # word vector size
    config.model.pooling = "mean"  # "mean", or "mean_max" (mean and max, concatenated)
    config.model.hidden_units = 32  # hidden ReLU layer width; 0 = none
    config.model.dropout = 0.1  # dropout before the hidden and output layers

    config.train = ml_collections.ConfigDict()
    config.train.num_epochs = 2  # passes over the training split
    config.train.optimizer = "lazy_adam"  # vtrain.optimizers name; lazy_adam updates only the seen words
    config.train.learning_rate = 3e-3  # at epoch 0
    config.train.learning_rate_decay = 0.5  # learning rate factor per epoch; 1 = constant
    config.train.kl_scale = 1.0  # KL weight = kl_scale / num_train (1 = the ELBO)
    config.train.kl_warmup_epochs = 1  # KL weight rises linearly from 0 over these epochs
    return config
