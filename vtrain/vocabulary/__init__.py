"""Vocabulary selection for any model with one word embedding.

Rank the words (`variational_ranking`, `frequency_ranking`,
`tfidf_ranking`), measure the model at many vocabulary sizes (`sweep`,
`summarise`, with `curves`' AUC and size at a drop) and write a pruned
model with the kept words only (`export_pruned`, `load_pruned`).
See docs/extending.md for a worked example.
"""

from vtrain.vocabulary import curves
from vtrain.vocabulary.export import export_pruned, load_pruned, pruned_model
from vtrain.vocabulary.masking import embedding_layer, keep_matrix_rows, mask_embedding
from vtrain.vocabulary.rankings import (
    FIRST_WORD_ID,
    OOV_ID,
    PADDING_ID,
    frequency_ranking,
    tfidf_ranking,
    variational_ranking,
)
from vtrain.vocabulary.sweep import DROPS, summarise, sweep

__all__ = [
    "DROPS",
    "FIRST_WORD_ID",
    "OOV_ID",
    "PADDING_ID",
    "curves",
    "embedding_layer",
    "export_pruned",
    "frequency_ranking",
    "keep_matrix_rows",
    "load_pruned",
    "mask_embedding",
    "pruned_model",
    "summarise",
    "sweep",
    "tfidf_ranking",
    "variational_ranking",
]
