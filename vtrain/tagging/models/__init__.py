"""Task models of the tag recommender, each a plain `vtrain.Model` subclass.

Every model takes plain constructor arguments, has a classmethod
`data_arguments(data)` for the ones a `TagData` fixes (vocabulary size,
number of tags, ...), and ranks tags with `recommend(token_ids, k)`. The
launcher builds them from a config in one place,
`vtrain.tagging.train.build_model`.

>>> sorted(MODELS)
['cnn', 'itag', 'pooled', 'triplet', 'vae']
"""

import importlib

# config.model.name -> (module, class); imported on first use, so a model
# under construction cannot break the others.
MODELS = {
    "pooled": ("vtrain.tagging.models.classifier", "PooledClassifier"),
    "cnn": ("vtrain.tagging.models.classifier", "CNNClassifier"),
    "itag": ("vtrain.tagging.models.itag", "ITag"),
    "triplet": ("vtrain.tagging.models.triplet", "TripletRecommender"),
    "vae": ("vtrain.tagging.models.vae", "BagOfWordsVAE"),
}


def model_class(name):
    """The model class that `config.model.name` names.

    Example:
    >>> model_class("pooled").__name__
    'PooledClassifier'
    """
    module, class_name = MODELS[name]
    return getattr(importlib.import_module(module), class_name)
