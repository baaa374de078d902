"""Triplet: a two-tower tag recommender trained with a margin triplet loss.

`vtrain.tagging.models.triplet.TripletRecommender` on the bundled Debian tags: a text
tower (word embedding, mean over the real tokens, ReLU layer, projection)
scores every tag by a dot product with the tag's vector (the item tower).
Terms: `triplet` (hinge, anchor = the description, positive = one of its tags,
negatives = tags it does not carry, drawn from the tag set) and `l2` (squared
norm of the towers' weights) with its own schedule, `l2_weight *
l2_decay ** epoch`.

Command (from the repository root), with the TF-IDF baseline
(configs/tfidf.py) trained on the same split and printed beside it:

    python -m vtrain.main --config=configs/triplet.py --baseline=configs/tfidf.py \
        --workdir=runs/triplet

Result on the source-package split (2026-12-02): test F1@3 0.4914 (P@1
0.763, R@5 0.684, NDCG@5 0.727) at epoch 10 of 10 (validation F1@3
0.5090), against 0.5327 for the baseline (P@1 0.809, R@5 0.741). The
pooled classifier (configs/default.py) reaches 0.5164 on the same split;
the triplet model sees one sampled positive per example and step instead
of all 487 labels. The command took 25 min wall while three other jobs
shared the 2-core machine (load about 8); this model's part 173 s. The
old split's figures: docs/results.md, History.
"""

import ml_collections

from vtrain.tagging import configs


def get_config():
    """The triplet run's config (see the module docstring)."""
    # configs/default.py's data and training sections, with the changes below.
    config = configs.base("default")
    config.train.num_epochs = 10  # passes over the training split
    config.train.optimizer = "adam"  # vtrain.optimizers name (the l2 term touches every word row anyway)
    config.train.learning_rate = 1e-3  # at epoch 0
    config.train.learning_rate_decay = 1.0  # learning rate factor per epoch; 1 = constant
    config.train.weight_decay_scale = 0.0  # unused: this model has no variational layer
    config.train.weight_decay_warmup_epochs = 0  # unused: this model has no variational layer

    config.model = ml_collections.ConfigDict()
    config.model.name = "triplet"  # vtrain.tagging.models.triplet.TripletRecommender
    config.model.embedding_dim = 128  # word, text and tag vector size
    config.model.hidden_units = 512  # text tower's hidden ReLU layer width
    config.model.dropout = 0.3  # dropout on the pooled words in training
    config.model.loss = "hinge"  # "hinge" (term triplet, uses the margin) or "bpr" (term bpr)
    config.model.margin = 0.5  # a true tag must outscore a negative by this much
    config.model.num_negatives = 64  # negative tags drawn per example and step
    config.model.hard_negatives = True  # hinge on the best-scoring of the negatives (else their mean)
    config.model.l2_weight = 2e-6  # weight of the l2 term at epoch 0
    config.model.l2_decay = 0.8  # l2 weight factor per epoch: regularise early, fit late
    return config
