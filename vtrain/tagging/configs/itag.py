"""iTag: conv encoder, attention decoder with a copy path, beam search.

The sequence-to-sequence tag recommender of `vtrain.tagging.models.itag` (after
SoftWiser-group/iTag) with a variational word embedding that selects its
vocabulary, on the bundled Debian tags.

Command (from the repository root; trains the plain-embedding twin of
configs/itag_baseline.py into WORKDIR/baseline first, then this model,
and writes the vocabulary report of each):

    python -m vtrain.main --config=configs/itag.py \
        --baseline=configs/itag_baseline.py --workdir=WORKDIR

Result on the source-package split (2026-12-02, this file on the code of
commit b3785e8; 21 min
16 s for the whole command; another job held one of the two cores for
its first 14 minutes): the threshold keeps 2,525 of 31,308 words (91.9%
dropped) at test F1@3 0.4770 (P@1 0.749; validation 0.4963, epoch 6 of
8), against 0.4880 for the twin with every word (validation 0.5172):
1.1 points below it. AUC of the variational ranking 0.831 (frequency
0.712, TF-IDF ranking 0.729, on the twin). The pooled default reaches
0.5164 and the TF-IDF baseline 0.5327 on the same split. Misses, each
by the figure above: the 1-point drop (1.1), within 1 point of the
pooled default (3.9 below) and 15 minutes. Runs and choices:
docs/results.md, iTag.
"""

import ml_collections

from vtrain.tagging import configs


def get_config():
    """The iTag run's config (see the module docstring)."""
    # configs/default.py's data and training sections, with the changes below.
    config = configs.base("default")
    config.data.sequence_length = 64  # tokens kept per description (the encoder's and the attention's cost grow with it)
    config.train.num_epochs = 8  # passes over the training split
    config.train.learning_rate = 2e-3  # at epoch 0
    config.train.learning_rate_decay = 0.85  # learning rate factor per epoch; 1 = constant
    config.train.weight_decay_scale = 200.0  # weight_decay = weight_decay_scale / num_train (1 = the ELBO)
    config.train.learning_rate_multipliers.log_alpha = 5.0  # log_alpha learning rate / the optimizer's
    config.train.weight_decay_warmup_epochs = 3  # weight_decay rises linearly from 0 over these epochs
    config.train.vocabulary_report_sizes = 10  # sizes per ranking in the vocabulary report (each one beam search of the test split)

    config.model = ml_collections.ConfigDict()
    config.model.name = "itag"  # vtrain.tagging.models.itag
    config.model.variational = True  # VariationalEmbedding (learns which words to drop) or a plain one
    config.model.threshold = 3.0  # words with log_alpha >= threshold are dropped at inference
    config.model.embedding_dim = 128  # word and tag vector size
    config.model.encoder_units = 128  # encoder states have 2 x this width (GRU units per direction, or conv filters / 2)
    config.model.decoder_units = 256  # decoder GRU units
    config.model.attention_units = 128  # hidden size of the additive attention
    config.model.max_tags = 8  # longest tag sequence decoded and trained on (90% of train lists fit)
    config.model.beam_width = 3  # beam search width in recommend()
    config.model.dropout = 0.3  # dropout on embeddings, encoder states and decoder readout
    config.model.log_alpha_init = (-4.0, -2.0)  # log_alpha starts uniform in this range: words start with little noise
    config.model.presence_weight = 1.0  # weight of the tag-presence head's loss (0 = no head, pure iTag)
    config.model.encoder = "conv"  # "gru" (bidirectional, as iTag) or "conv" (two width-3 Conv1D layers: 107 against 118 ms a step here)
    config.model.presence_reads_words = True  # the presence head also reads the mean word vector (a skip past the encoder)
    config.model.presence_hidden_units = 512  # hidden ReLU layer of the presence head (0 = linear), as the pooled model's
    config.model.unknown_words = "zero"  # [UNK] tokens: "zero" vector (training and inference), "learned" or "zero_at_inference"
    config.model.ranking = "fused"  # "beam": the beam's tags, then presence; "fused": presence probability + beam share
    return config
