"""Variational layers: each adds its KL to `VariationalModel`'s loss."""

from vtrain.layers.base import VariationalLayer, kl_log_uniform
from vtrain.layers.variational_embedding import VariationalEmbedding
from vtrain.layers.variational_dense import VariationalDense
