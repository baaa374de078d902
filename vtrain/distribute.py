"""Distribution: a `tf.distribute` strategy by name, and terms right on N replicas.

How vtrain trains on N replicas (`vtrain.Model.train_step`): every replica
computes its terms on its own slice of the global batch, divides its
weighted total by N, and the optimizer **sums** the gradients over replicas.
So a term counts once, as on one replica, when each replica returns

- a **global** term (does not depend on the batch: the KL of an embedding
  table, a weight regulariser) **as it is**: N replicas x (term / N) = term;
- an **average over examples** through `example_mean(per_example)`, never
  `ops.mean`: the mean of N per-replica means equals the global mean only
  when every replica has the same number of examples. The last global batch
  of an epoch is usually short and is split unevenly (7 examples on 2
  replicas: 4 + 3; 1 example: 1 + 0, where `ops.mean` of the empty slice is
  NaN, and so are the epoch's logs). `example_mean` weights each replica by its
  share of the global batch, so the gradient is exactly that of the global
  mean, and the logged value stays exact too.

A sum over examples (not a mean) or an in-batch contrastive term (negatives
drawn from the replica's slice) does not decompose this way; see
`docs/reliability.md`.

Random draws in a step (noise, sampled negatives) take their seed from
`replica_seed(seed_generator)`: a `keras.random.SeedGenerator`'s state is
mirrored, so a plain `keras.random.normal(..., seed=generator)` gives every
replica the same stream, and the k-th example of each slice the same noise.
"""

import difflib
import json
import os

import tensorflow as tf

STRATEGIES = ("none", "mirrored", "multi_worker")
_CACHE = {}

_TF_CONFIG_EXAMPLE = (
    '{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]}, '
    '"task": {"type": "worker", "index": 0}}'
)


def get_strategy(name="none", devices=None):
    """Returns the `tf.distribute.Strategy` called `name`.

    Args:
        name: `"none"` (TensorFlow's default strategy: one device, no
            replication), `"mirrored"` (`MirroredStrategy`: one replica per
            local device) or `"multi_worker"` (`MultiWorkerMirroredStrategy`,
            one process per worker, configured from the `TF_CONFIG`
            environment variable; create it before any other TensorFlow op).
        devices: for `"mirrored"` only: device names. Default: every GPU, or,
            without GPUs, every logical CPU device (one unless the CPU was
            split, see `split_cpu`).

    Create the model, its optimizer and `compile()` inside
    `strategy.scope()`; `fit` then runs one replica per device. The same
    arguments return the same object within a process. `jit_compile=True`
    fails under `"mirrored"` on CPU devices (in Keras itself, TF 2.21);
    keep the default `jit_compile="auto"` there.

    Example:
    >>> strategy = get_strategy("none")
    >>> strategy.num_replicas_in_sync
    1
    >>> get_strategy("mirored")
    Traceback (most recent call last):
    ...
    ValueError: Unknown strategy 'mirored'. Expected one of ['none', 'mirrored', 'multi_worker']. Did you mean 'mirrored'?
    """
    if name not in STRATEGIES:
        close = difflib.get_close_matches(str(name), STRATEGIES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown strategy {name!r}. Expected one of {list(STRATEGIES)}.{hint}")
    if devices is not None and name != "mirrored":
        raise ValueError(
            f"get_strategy({name!r}) received devices={devices!r}; devices= "
            "applies to 'mirrored' only. Remove it, or use 'mirrored'."
        )
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tuple(_local_devices() if devices is None else devices)
        key = (name, devices)
    else:
        key = (name, os.environ.get("TF_CONFIG"))
        check_tf_config(key[1])
    # One object per configuration and process: two MirroredStrategy objects
    # training in one process can abort each other's collectives ("Shape
    # mismatch in the collective instance ...").
    if key not in _CACHE:
        _CACHE[key] = (
            tf.distribute.MirroredStrategy(list(devices))
            if name == "mirrored"
            else tf.distribute.MultiWorkerMirroredStrategy()
        )
    return _CACHE[key]


def check_tf_config(text):
    """Parses and checks a `TF_CONFIG` string; returns it as a dict.

    Example:
    >>> config = check_tf_config(
    ...     '{"cluster": {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]},'
    ...     ' "task": {"type": "worker", "index": 1}}')
    >>> config["task"]
    {'type': 'worker', 'index': 1}
    >>> check_tf_config('{"cluster": {"worker": ["127.0.0.1:2222"]}}')
    Traceback (most recent call last):
    ...
    ValueError: Invalid TF_CONFIG: no "task" entry...
    """
    fix = (
        f"Expected JSON of the form {_TF_CONFIG_EXAMPLE}: every worker's "
        "host:port, the same list on every worker, and this process's task. "
        "Set it in the environment of each worker before it starts; on one "
        "machine use strategy 'mirrored' or 'none' instead."
    )
    if not text:
        raise ValueError(
            "strategy 'multi_worker' needs the TF_CONFIG environment variable, "
            f"but it is {'empty' if text == '' else 'not set'}. {fix}"
        )
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"Invalid TF_CONFIG: not JSON ({error}). Received {text!r}. {fix}"
        ) from None

    def invalid(what):
        return ValueError(f"Invalid TF_CONFIG: {what}. Received {text!r}. {fix}")

    if not isinstance(config, dict):
        raise invalid("not a JSON object")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise invalid('no "cluster" entry (a non-empty object)')
    for role, addresses in cluster.items():
        if (
            not isinstance(addresses, list)
            or not addresses
            or not all(_is_address(a) for a in addresses)
        ):
            raise invalid(f'cluster["{role}"] must be a non-empty list of "host:port" strings')
    if "worker" not in cluster and "chief" not in cluster:
        raise invalid('the cluster has no "worker" (or "chief") list')
    if not isinstance(task, dict):
        raise invalid('no "task" entry (an object with "type" and "index")')
    role, index = task.get("type"), task.get("index")
    if role not in cluster:
        raise invalid(f"task type {role!r} is not a role of the cluster {sorted(cluster)}")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[role]):
        raise invalid(
            f"task index {index!r} is not in [0, {len(cluster[role])}) for the "
            f'{len(cluster[role])} "{role}" address(es)'
        )
    return config


def split_cpu(num_devices):
    """Splits the CPU into `num_devices` logical devices (before TF starts).

    Lets `get_strategy("mirrored")` run N replicas on one CPU, e.g. to test
    distributed code without GPUs. TensorFlow fixes its devices when it
    first runs an op, so call this at program start. Calling it again with
    the same count is harmless.

    Example:
    >>> split_cpu(1)  # already initialised with 1 CPU device in this process
    1
    """
    if isinstance(num_devices, bool) or not isinstance(num_devices, int) or num_devices < 1:
        raise ValueError(
            f"Invalid num_devices: received {num_devices!r}. Expected a "
            "positive integer number of logical CPU devices, e.g. 2."
        )
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == num_devices:
        return num_devices
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices
        )
    except RuntimeError as error:
        count = len(tf.config.list_logical_devices("CPU"))
        if count == num_devices:
            return num_devices
        raise RuntimeError(
            f"Cannot split the CPU into {num_devices} logical devices: "
            f"TensorFlow is already initialised with {count}. Call "
            "vtrain.distribute.split_cpu() at program start, before any "
            "TensorFlow op (or model) is created."
        ) from error
    return num_devices


def replica_seed(seed_generator):
    """A seed for `tf.random.stateless_*` draws, different on every replica.

    Advances `seed_generator` (a `keras.random.SeedGenerator`) once, as a
    `keras.random` draw would. On one replica (or outside a strategy) the
    seed is the one `keras.random` itself would use, so
    `tf.random.stateless_normal(shape, seed=replica_seed(g))` equals
    `keras.random.normal(shape, seed=g)`. Under `tf.distribute` the seed is
    folded with the replica id: the generator's state is mirrored, and
    without the fold every replica would draw the same stream.

    Args:
        seed_generator: the `keras.random.SeedGenerator` of a layer or model.

    Returns:
        An int32 tensor of shape `[2]`.

    Example:
    >>> import keras, numpy as np, tensorflow as tf
    >>> a, b = keras.random.SeedGenerator(7), keras.random.SeedGenerator(7)
    >>> ours = tf.random.stateless_normal([3], seed=replica_seed(a))
    >>> bool(np.allclose(ours, keras.random.normal([3], seed=b)))
    True
    """
    seed = seed_generator.next()
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        seed = tf.random.experimental.stateless_fold_in(
            tf.cast(seed, "int64"), context.replica_id_in_sync_group
        )
    if seed.dtype == tf.int32:
        return seed
    # What keras.random does with the generator's int64 state: stateless
    # draws take int32 seeds under XLA.
    return tf.cast(tf.math.floormod(tf.cast(seed, "int64"), tf.int32.max - 1), "int32")


def example_mean(values, sample_weight=None):
    """The mean of `values` over every example of the *global* batch.

    Use it in `compute_losses` for every term that averages over examples
    (a cross-entropy, a reconstruction error), so that the term is right on
    one replica or N, including the short last batch. Return global terms
    (a KL of the weights) as they are.

    On one replica it is `sum(sample_weight * values) / size(values)`, the
    Keras "sum over batch size" mean: `sample_weight` scales each example
    but does not change the denominator. Under `tf.distribute` with N
    replicas it returns this replica's mean (what the logs average,
    weighted by the local batch size, so epoch logs are exact) with its
    gradient scaled by `N * local_count / global_count` (so the gradients
    that `vtrain.Model.train_step` divides by N and the optimizer sums are
    exactly those of the global mean). A replica with no examples returns 0.
    Costs one all-reduce of a scalar per call under distribution.

    Args:
        values: per-example (or per-element) losses, rank >= 1, e.g. `[B]`
            or `[B, T]`; the mean is over every element.
        sample_weight: None, or weights broadcastable to `values` after
            adding trailing axes (e.g. `[B]` for `[B, T]` values), or of
            the same size (e.g. `[B, 1]` for `[B]` values).

    Returns:
        A float32 scalar tensor.

    Example:
    >>> import numpy as np
    >>> float(example_mean(np.array([1.0, 2.0, 6.0])))
    3.0
    >>> float(example_mean(np.array([1.0, 2.0, 6.0]), sample_weight=[1, 1, 0]))
    1.0
    >>> float(example_mean(np.zeros((0,))))  # an empty slice is 0, not NaN
    0.0
    """
    values = tf.cast(tf.convert_to_tensor(values), "float32")
    if values.shape.rank == 0:
        raise ValueError(
            "example_mean received a scalar; expected per-example values of "
            "rank >= 1 (e.g. shape [batch]). Pass the values before reducing "
            "them, or return a global term as it is."
        )
    if sample_weight is not None:
        weight = tf.cast(tf.convert_to_tensor(sample_weight), "float32")
        if weight.shape.rank > values.shape.rank:  # e.g. [B, 1] for [B]
            weight = tf.reshape(weight, tf.shape(values))
        while weight.shape.rank < values.shape.rank:
            weight = tf.expand_dims(weight, -1)
        values = values * weight
    local_sum = tf.reduce_sum(values)
    local_count = tf.cast(tf.size(values), "float32")
    local_mean = tf.math.divide_no_nan(local_sum, local_count)
    context = tf.distribute.get_replica_context()
    # None: cross-replica context (e.g. Keras's symbolic build under a
    # strategy scope): shapes only, nothing to reduce over.
    if context is None or context.num_replicas_in_sync == 1:
        return local_mean
    global_count = context.all_reduce(tf.distribute.ReduceOp.SUM, local_count)
    share = tf.math.divide_no_nan(context.num_replicas_in_sync * local_count, global_count)
    # Forward value: the local mean exactly (the trackers weight it by the
    # local batch size). Gradient: `share` times that of the local mean.
    scaled = local_mean * share
    return tf.stop_gradient(local_mean) + scaled - tf.stop_gradient(scaled)


def _local_devices():
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return [d.name for d in gpus]
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def _is_address(value):
    if not isinstance(value, str) or ":" not in value:
        return False
    host, _, port = value.rpartition(":")
    return bool(host) and port.isdigit()


def gather_integers(strategy, value):
    """Every replica's `value` (a Python int), in replica order: a collective.

    Called eagerly by every worker at the same point (e.g. a callback's
    `on_train_begin`); under a one-replica strategy it returns `[value]`.

    Example:
    >>> gather_integers(tf.distribute.get_strategy(), 7)
    [7]
    """
    if strategy.num_replicas_in_sync == 1:
        return [int(value)]
    local = tf.constant([int(value)], tf.int64)
    per_replica = strategy.run(lambda: tf.identity(local))
    return [int(v) for v in strategy.gather(per_replica, axis=0).numpy()]
