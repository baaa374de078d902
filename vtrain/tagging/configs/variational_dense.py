"""Variational dense: the pooled classifier with a VariationalDense hidden layer.

The pooled classifier (the architecture of `configs/default.py`: a
variational word embedding, mean pooling, one 512-unit ReLU layer) whose
hidden layer is a `vtrain.layers.VariationalDense` (Sparse Variational
Dropout, Molchanov et al. 2017): each of its 256 x 512 weights learns its own
noise variance, and weights with log_alpha >= 3 are dropped at inference.
Its KL joins the embedding's in the `kl` term. The KL weight rises over 10
epochs so that the layer learns before it prunes (with a 5-epoch warm-up to
a third of this weight, the layer had dropped 93% of its weights by epoch 5
and still trailed the dense network by 3 validation F1@3 points at epoch
20).

Command (from the repository root): this network and the same network with
a plain Dense hidden layer, trained in turn, printed side by side:

    python -m vtrain.main --config=configs/variational_dense.py \
        --baseline=configs/variational_dense.py \
        --baseline.model.variational_hidden=False --workdir=runs/variational_dense

Result on the source-package split (2026-12-02, 11 min 45 s wall for the
command while other jobs shared the 2-core machine, load 4 to 5; this
model 405 s, the plain one 288 s), best validation epoch 30 of 30 for both:
test F1@3 0.5005 against 0.5073 for the plain Dense layer (-0.68 points;
validation 0.5194 against 0.5281), with 9,610 of the 131,072 hidden weights
kept (7.3%). Both keep the learned [UNK] vector they were measured with
(`model.unknown_words`); the TF-IDF baseline (configs/tfidf.py) reaches
0.5327 on the same split. The old split's figures: docs/results.md, History.
"""

from vtrain.tagging import configs


def get_config():
    """The variational-dense run's config (see the module docstring): configs/default.py with these changes."""
    config = configs.base("default")
    config.model.variational_hidden = True  # VariationalDense hidden layer (learns which weights to drop)
    config.model.dropout = 0.3  # dropout before the hidden and output layers
    config.model.unknown_words = "learned"  # [UNK] tokens: measured with a learned vector ("zero", the default's, not tried here)
    config.train.num_epochs = 30  # passes over the training split
    config.train.learning_rate = 1e-3  # at epoch 0
    config.train.learning_rate_decay = 1.0  # learning rate factor per epoch; 1 = constant
    config.train.weight_decay_scale = 3.0  # weight_decay = weight_decay_scale / num_train; 3 pushes the hidden layer under 10% kept
    config.train.weight_decay_warmup_epochs = 10  # weight_decay rises linearly from 0 over these epochs (slowly: the hidden layer learns first)
    return config
