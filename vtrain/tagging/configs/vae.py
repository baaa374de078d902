"""VAE: a neural topic model over the bag of words of each description.

`vtrain.tagging.models.vae.BagOfWordsVAE` (NVDM-style: MLP encoder -> mu, log_var;
reparameterised z; linear decoder and softmax over the vocabulary) on the
descriptions of the bundled Debian tags, tags unused. Terms
`reconstruction` (multinomial negative log-likelihood of the counts) and
`kl` (closed-form KL to N(0, I)), the KL weight annealed cyclically
(Fu et al. 2019) from 0 to 1. The best epoch is chosen on the validation
ELBO (weight 1), and the test split reports the ELBO per document, the KL
and the perplexity exp(-sum ELBO / sum words), not F1@3 (a VAE recommends
no tags).

Command (from the repository root):

    python -m vtrain.main --config=configs/vae.py --workdir=runs/vae

Result on the source-package split (2026-12-02, at commit 05b738d,
2 min 5 s wall while other jobs shared the 2-core machine, load about 4),
best epoch 20 of 20 (the validation ELBO still improving), test split
(2,879 documents, 54.8 counted words each): ELBO per document -355.19 nats
(reconstruction 337.33 + KL 17.86), perplexity bound 652.3 against 805.6
for the unigram model of the training word counts that the same command
reports beside it (`unigram_perplexity`; validation: 588.5 against 789.1).
The old split's figures: docs/results.md, History.
"""

import ml_collections

from vtrain.tagging import configs


def get_config():
    """The VAE run's config (see the module docstring)."""
    # configs/default.py's data and training sections, with the changes below.
    config = configs.base("default")
    config.data.batch_size = 256  # documents per training step
    config.train.num_epochs = 20  # passes over the training split
    config.train.optimizer = "adam"  # vtrain.optimizers name
    config.train.learning_rate = 2e-3  # at epoch 0
    config.train.learning_rate_decay = 1.0  # learning rate factor per epoch; 1 = constant
    config.train.weight_decay_scale = 0.0  # unused: the VAE's KL weight is model.kl_* (1 = the ELBO)
    config.train.weight_decay_warmup_epochs = 0  # unused: see model.kl_anneal_epochs

    config.model = ml_collections.ConfigDict()
    config.model.name = "vae"  # vtrain.tagging.models.vae.BagOfWordsVAE
    config.model.max_words = 10_000  # model the 10,000 most frequent ids (2 reserved: padding, [UNK])
    config.model.num_topics = 50  # size of the latent code z
    config.model.hidden_units = 256  # width of the encoder's two softplus layers
    config.model.kl_schedule = "cyclical"  # KL weight schedule: "cyclical" or "linear_warmup", 0 -> 1
    config.model.kl_anneal_epochs = 8  # epochs the cycles span (warm-up: its length); weight 1 after
    config.model.kl_cycles = 2  # cyclical: number of cycles
    config.model.kl_ratio = 0.5  # cyclical: fraction of each cycle spent rising
    return config
