"""vtrain layers: variational ones add their KL to `VariationalModel`'s loss; `GatherEmbedding` is a plain embedding with a sparse gradient."""

from vtrain.layers.base import VariationalLayer, kl_log_uniform
from vtrain.layers.gather_embedding import GatherEmbedding
from vtrain.layers.variational_dense import VariationalDense
from vtrain.layers.variational_embedding import VariationalEmbedding
