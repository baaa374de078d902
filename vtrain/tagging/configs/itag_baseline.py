"""iTag baseline: configs/itag.py with a plain embedding (its twin).

The same model, data and training with every word kept: the vocabulary
report of configs/itag.py measures its frequency and TF-IDF rankings on
it, and every drop from its full-vocabulary F1@3. Trained by that
config's command into WORKDIR/baseline:

    python -m vtrain.main --config=configs/itag.py \
        --baseline=configs/itag_baseline.py --workdir=WORKDIR

Result: see configs/itag.py.
"""

from vtrain.tagging import configs


def get_config():
    """The twin's config (see the module docstring): configs/itag.py with these changes."""
    config = configs.base("itag")
    config.model.variational = False  # a plain embedding: no KL, no word is dropped
    config.train.weight_decay_scale = 0.0  # no KL term (no variational layer)
    config.train.learning_rate_multipliers.log_alpha = 1.0  # no log_alpha to speed up
    return config
