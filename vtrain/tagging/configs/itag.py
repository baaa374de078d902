"""iTag: BiGRU encoder, attention decoder with a copy path, beam search.

The sequence-to-sequence tag recommender of `vtrain.tagging.models.itag` (after
SoftWiser-group/iTag) with a variational word embedding, on the bundled
Debian tags.

Command (from the repository root):

    python -m vtrain.main --config=configs/itag.py

Result on this 2-core machine (the model of 1bc195c, with the LazyAdam of
before bd22e26 and the training order of before 6097a6f, so a rerun now
differs by float rounding and training noise; measured 2026-11-27, while three other
engineers' jobs shared the two cores; load average about 7):

    test           @1      @3      @5
    precision  0.8201  0.5574  0.4277
    recall     0.4075  0.6423  0.7307
    f1         0.4856  0.5198  0.4698
    vocabulary: 32,046 of 32,046 rows kept (sparsity 0.0%)

Test F1@3 0.520 and P@1 0.820 from the best validation epoch (8 of 10,
validation F1@3 0.531); 42 min 49 s wall for the whole command (`time:
2558 s`, about 4 min 15 s per epoch with its validation beam search).
This falls SHORT of issue 3's aim of F1@3 >= 0.57, and below the pooled
default (`configs/default.py`, 0.543 in under 5 minutes). The variational
embedding dropped no word in 10 epochs: its `log_alpha` starts at -6..-4
and the KL weight 1 / num_train did not push any row past the threshold.
`num_epochs` was chosen for the time budget, not tuned; validation F1@3
by epoch: 0.319, 0.434, 0.487, 0.517, 0.523, 0.524, 0.526, 0.531, 0.529,
0.531 (flat after epoch 5). On the same checkpoint, ranking the tags by
the tag-presence head alone (no decoder) gives validation F1@3 0.548
against the beam ranking's 0.531 (see `vtrain.tagging.models.itag`).
"""

import ml_collections

from vtrain.tagging import configs


def get_config():
    """The iTag run's config (see the module docstring)."""
    # configs/default.py's data and training sections, with the changes below.
    config = configs.base("default")
    config.data.sequence_length = (
        64  # tokens kept per description (the recurrent encoder's cost grows with it)
    )
    config.train.num_epochs = 10  # passes over the training split (about 4 min 15 s each here)
    config.train.learning_rate = 2e-3  # at epoch 0
    config.train.learning_rate_decay = 0.85  # learning rate factor per epoch; 1 = constant
    config.train.weight_decay_scale = (
        1.0  # weight_decay = weight_decay_scale / num_train (1 = the ELBO)
    )
    config.train.weight_decay_warmup_epochs = (
        3  # weight_decay rises linearly from 0 over these epochs
    )

    config.model = ml_collections.ConfigDict()
    config.model.name = "itag"  # vtrain.tagging.models.itag
    config.model.variational = (
        True  # VariationalEmbedding (learns which words to drop) or a plain one
    )
    config.model.threshold = 3.0  # words with log_alpha >= threshold are dropped at inference
    config.model.embedding_dim = 128  # word and tag vector size
    config.model.encoder_units = 128  # GRU units per direction of the bidirectional encoder
    config.model.decoder_units = 256  # decoder GRU units
    config.model.attention_units = 128  # hidden size of the additive attention
    config.model.max_tags = (
        8  # longest tag sequence decoded and trained on (90% of train lists fit)
    )
    config.model.beam_width = 3  # beam search width in recommend()
    config.model.dropout = 0.3  # dropout on embeddings, encoder states and decoder readout
    config.model.log_alpha_init = (
        -6.0,
        -4.0,
    )  # log_alpha starts uniform in this range: words start almost noise-free
    config.model.presence_weight = 1.0  # weight of the tag-presence head's loss; it ranks the tags after the beam's; 0 = pure iTag
    return config
