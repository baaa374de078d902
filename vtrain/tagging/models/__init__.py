"""Task models, built from a config's `model` section by `build_model`.

Every model is an uncompiled `vtrain.Model` whose `fit` takes batches
`(token_ids int32 [B, L], tags float32 multi-hot [B, T])` and which ranks
tags with `recommend(token_ids, k) -> int32 [B, k]`.

>>> import types
>>> data = types.SimpleNamespace(vocabulary=["", "[UNK]", "vim"], num_train=10,
...                              tags=["editor", "game"], tag_train_counts=[4, 0])
>>> type(build_model({"name": "pooled", "embedding_dim": 8}, data)).__name__
'PooledClassifier'
"""

import importlib

# name -> module with a `build(model_config, data, **kwargs)`; imported on
# first use, so a model under construction cannot break the others.
BUILDERS = {
    "pooled": "vtrain.tagging.models.classifier",
    "cnn": "vtrain.tagging.models.classifier",
    "itag": "vtrain.tagging.models.itag",
    "triplet": "vtrain.tagging.models.triplet",
    "vae": "vtrain.tagging.models.vae",
}


def build_model(model_config, data, **kwargs):
    """An uncompiled task model named by `model_config["name"]`.

    Args:
        model_config: the config's `model` section (a mapping with `name`
            and the model's options).
        data: the `vtrain.tagging.data.pipeline.TagData` it will be trained on.
        **kwargs: `vtrain.VariationalModel` arguments passed on, e.g.
            `weight_decay=` (the KL weight schedule) and `learning_rate=`.

    Returns:
        A `vtrain.Model` with a `recommend(token_ids, k)` method.

    Example: see the module docstring.
    """
    name = model_config["name"]
    if name not in BUILDERS:
        raise ValueError(
            f"Invalid value for --config.model.name: received {name!r}. "
            f"Expected one of {sorted(BUILDERS)}."
        )
    return importlib.import_module(BUILDERS[name]).build(model_config, data, **kwargs)
