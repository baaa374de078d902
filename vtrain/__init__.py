"""vtrain: multi-term losses for Keras 3.

Subclass `vtrain.Model`, override `compute_losses(data, training)` to return a
dict of named scalar terms, and call `fit` with no loss argument.
"""

__version__ = "0.1.0"
