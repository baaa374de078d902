"""Vocabulary baseline: the default pooled classifier with a plain embedding.

The non-variational full-vocabulary model: the frequency and
TF-IDF rankings are measured on it, and every vocabulary drop is measured
from its full-vocabulary F1@3. It is trained by configs/vocabulary.py's
command, into WORKDIR/baseline:

    python -m vtrain.main --config=configs/vocabulary.py \
        --baseline=configs/vocabulary_baseline.py --workdir=WORKDIR

Result on the source-package split (that command, 2026-12-01): 87 s for
this part, test F1@3 0.4978 (P@1 0.766) from its best validation epoch
(F1@3 0.5197, epoch 5 of 8).
"""

from vtrain.tagging import configs


def get_config():
    """The baseline's config (see the module docstring): configs/default.py with these changes."""
    config = configs.base("default")
    config.model.variational = False  # a plain embedding: no KL, no word is dropped
    config.train.num_epochs = 8  # it peaks on validation by epoch 5, then overfits
    config.train.weight_decay_scale = 0.0  # no KL term (no variational layer)
    config.train.weight_decay_warmup_epochs = 0  # no KL term to warm up
    return config
