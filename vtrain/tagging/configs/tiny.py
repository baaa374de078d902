"""Tiny: the default model, shrunk to run end to end in seconds (for tests).

Command (from the repository root):

    python -m vtrain.main --config=configs/tiny.py --workdir=/tmp/vtrain-tiny

Result on this 2-core machine (2026-12-01, source-package split, while the
test suite ran: load about 4): 38 s wall, test F1@3 0.099: two epochs on 2,000 examples learn little beyond the
tag frequencies; the config exists to exercise the whole run (data,
training, checkpoints, resume, results.json) quickly, not to score.
"""

from vtrain.tagging import configs


def get_config():
    """The tiny run's config (see the module docstring): configs/default.py with these changes."""
    config = configs.base("default")
    config.data.max_vocabulary_size = 2000  # cap on vocabulary rows, padding and [UNK] included
    config.data.sequence_length = 32  # tokens kept per description (the first ones)
    config.data.batch_size = 128  # examples per training step
    config.data.eval_batch_size = 1024  # examples per validation / test batch
    config.data.max_train_examples = 2000  # use only the first N training examples
    config.model.embedding_dim = 16  # word vector size
    config.model.hidden_units = 32  # hidden ReLU layer width
    config.train.num_epochs = 2  # passes over the training split
    config.train.learning_rate_decay = 0.5  # learning rate factor per epoch
    config.train.weight_decay_scale = 1.0  # weight_decay = weight_decay_scale / num_train (1 = the ELBO)
    config.train.weight_decay_warmup_epochs = 1  # weight_decay rises linearly from 0 over these epochs
    return config
