"""Vocabulary baseline: the default pooled classifier with a plain embedding.

The non-variational full-vocabulary model of issue 4: the frequency and
TF-IDF rankings are measured on it, and every vocabulary drop is measured
from its full-vocabulary F1@3. It is trained by configs/vocabulary.py's
command, into WORKDIR/baseline:

    python -m vtrain.main --config=configs/vocabulary.py \
        --baseline=configs/vocabulary_baseline.py --workdir=WORKDIR

Result (that command, 2026-11-27, shared 2-core machine): 3 min 13 s wall
for this part, test F1@3 0.5336 (P@1 0.829) from its best validation epoch
(F1@3 0.5483, epoch 5 of 8). Eight epochs: a plain embedding peaks on
validation by epoch 5, then overfits (configs/default.py's notes).
"""

import ml_collections


def get_config():
    """The baseline's config (see the module docstring)."""
    config = ml_collections.ConfigDict()
    config.seed = 0  # seeds the weights, dropout, embedding noise and shuffle
    config.strategy = "none"  # none | mirrored | multi_worker (see docs/reliability.md)

    config.data = ml_collections.ConfigDict()
    config.data.path = ""  # "" = bundled Debian dataset; else a .jsonl/.json/.tsv(.gz) file with text and tags
    config.data.min_tag_train_uses = 5  # tags used by fewer training examples are dropped
    config.data.min_word_count = 2  # words seen fewer times in the training texts become [UNK]
    config.data.max_vocabulary_size = 0  # cap on vocabulary rows, padding and [UNK] included; 0 = no cap
    config.data.sequence_length = 160  # tokens kept per description (the first ones)
    config.data.lowercase = True  # lower-case texts before splitting into words
    config.data.strip_punctuation = True  # remove ASCII punctuation before splitting
    config.data.batch_size = 64  # examples per training step
    config.data.eval_batch_size = 512  # examples per validation / test batch
    config.data.max_train_examples = 0  # use only the first N training examples; 0 = all

    config.model = ml_collections.ConfigDict()
    config.model.name = "pooled"  # "pooled" (embedding mean + MLP), "cnn" or "itag"
    config.model.variational = False  # a plain embedding: no KL, no word is dropped
    config.model.threshold = 3.0  # unused without a variational layer
    config.model.embedding_dim = 256  # word vector size
    config.model.pooling = "mean"  # "mean", or "mean_max" (mean and max, concatenated)
    config.model.hidden_units = 512  # hidden ReLU layer width; 0 = none
    config.model.dropout = 0.1  # dropout before the hidden and output layers

    config.train = ml_collections.ConfigDict()
    config.train.num_epochs = 8  # it peaks on validation by epoch 5, then overfits
    config.train.optimizer = "lazy_adam"  # vtrain.optimizers name; lazy_adam updates only the seen words
    config.train.learning_rate = 3e-3  # at epoch 0
    config.train.learning_rate_decay = 0.9  # learning rate factor per epoch; 1 = constant
    config.train.kl_scale = 0.0  # no KL term (no variational layer)
    config.train.kl_warmup_epochs = 0  # no KL term to warm up
    return config
