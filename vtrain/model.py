"""`vtrain.Model`: a `keras.Model` whose loss is any number of named terms."""

import threading
import warnings

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from vtrain import _keras_compat, optimizers, schedules
from vtrain.callbacks import EpochScheduler
from vtrain.optimizers import SparseLossScaleOptimizer

REGULARIZATION = "regularization"
_RESERVED_NAMES = ("loss", "learning_rate", REGULARIZATION)


class _Trackers:
    """Holds the per-term `Mean` trackers out of Keras's auto-tracking.

    Terms are only known once `compute_losses` has been traced, after a
    subclassed model has been built and its state locked; the trackers are
    reported through `Model.metrics` instead, grouped (see
    `_keras_compat.MetricGroup`) and lower-is-better, so that Keras's
    monitor callbacks infer their direction as they do for `loss`.
    """

    def __init__(self):
        self.total = _keras_compat.LowerIsBetterMean(name="loss")
        self.terms = _keras_compat.MetricGroup(name="terms")
        self.by_name = {}
        self.warned_densified = set()  # ids of optimizers already warned about


class Model(keras.Model):
    """A `keras.Model` trained on named loss terms, with epoch schedules.

    Override one hook, `compute_losses(data, training)`, returning a dict
    `{term name: scalar tensor}`. The step minimises
    `sum(weight[t] * term[t])` (a missing weight is 1.0) and logs `loss`
    (the weighted total), every term, every scheduled weight as
    `<term>_weight` and the `learning_rate`: in the progress bar, `History`,
    TensorBoard, and as `val_*` for validation data. Epoch logs are exact
    epoch means (weighted by batch size), not last-batch values.

    Plain Keras losses count too: the sum of `self.losses` (layer
    `kernel_regularizer`/`activity_regularizer`s and `add_loss()` in
    `call`) is added as the term `regularization` (weight 1, logged like
    the others) when the model has any. Every term, `loss` and their
    `val_` forms can be monitored by `EarlyStopping`, `ModelCheckpoint`
    and `ReduceLROnPlateau` without `mode=`: lower is better.

    `model.epoch` is a non-trainable int64 variable, saved with the
    weights, set at the start of every epoch (from `fit`'s epoch index, so
    resumed runs are right) by a callback that `fit` adds itself. Weights
    live in variables too, so changing them never retraces the step.

    Args:
        loss_weights: dict `{term: float or callable epoch -> float}`;
            use `vtrain.schedules` for weights that must survive saving.
        learning_rate: None, or a callable `epoch -> float` set on the
            optimizer at every epoch start.
        *args, **kwargs: as for `keras.Model`, including the functional
            form `Model(inputs, outputs, loss_weights=...)`.

    Example:
    >>> import numpy as np, keras, vtrain
    >>> class Regression(vtrain.Model):
    ...     def __init__(self, **kwargs):
    ...         super().__init__(**kwargs)
    ...         self.dense = keras.layers.Dense(1)
    ...     def call(self, x):
    ...         return self.dense(x)
    ...     def compute_losses(self, data, training):
    ...         x, y = data
    ...         error = keras.ops.mean((self(x)[:, 0] - y) ** 2)
    ...         l2 = keras.ops.sum(self.dense.kernel ** 2)
    ...         return {"mse": error, "l2": l2}
    >>> model = Regression(loss_weights={"l2": vtrain.schedules.constant(0.01)},
    ...                    learning_rate=lambda epoch: 0.1 * 0.5 ** epoch)
    >>> model.compile(optimizer="sgd")
    >>> x, y = np.ones((8, 3), "float32"), np.ones(8, "float32")
    >>> history = model.fit(x, y, epochs=2, verbose=0)
    >>> sorted(history.history)
    ['l2', 'l2_weight', 'learning_rate', 'loss', 'mse']
    >>> history.history["learning_rate"]
    [0.1, 0.05]
    >>> int(model.epoch.numpy())
    1
    """

    def __new__(cls, *args, **kwargs):
        if _functional_arguments(args, kwargs) and not issubclass(cls, _keras_compat.Functional):
            return super().__new__(_functional_variant(cls), *args, **kwargs)
        return super().__new__(cls, *args, **kwargs)

    def __init__(self, *args, loss_weights=None, learning_rate=None, **kwargs):
        if isinstance(self, _keras_compat.Functional):
            # What keras.Model.__init__ does before _keras_compat.Functional.__init__, minus
            # its class-hierarchy rewrite (see _functional_variant).
            _keras_compat.TensorFlowTrainer.__init__(self)
        super().__init__(*args, **kwargs)
        loss_weights = dict(loss_weights or {})
        for term in loss_weights:
            _check_term_name(term, "loss_weights")
        self.loss_weight_schedules = {
            term: schedules.as_schedule(_deserialize(value)) for term, value in loss_weights.items()
        }
        self.learning_rate_schedule = (
            None if learning_rate is None else schedules.as_schedule(_deserialize(learning_rate))
        )
        self.epoch = self.add_weight(
            shape=(),
            dtype="int64",
            initializer="zeros",
            trainable=False,
            name="epoch",
        )
        # Initial values are the epoch-0 values, so evaluate() before fit()
        # already uses the schedule, not a placeholder.
        self.loss_weight_variables = {
            term: self.add_weight(
                shape=(),
                dtype="float32",
                trainable=False,
                name=f"{term}_weight",
                initializer=keras.initializers.Constant(schedule(0)),
            )
            for term, schedule in self.loss_weight_schedules.items()
        }
        self._trackers = _Trackers()
        self._step_state = threading.local()  # per replica thread: see __call__

    def compute_losses(self, data, training):
        """The one hook: return `{term name: scalar tensor}` for a batch.

        Args:
            data: the batch exactly as `fit`/`evaluate` yield it, e.g.
                `(x, y)` or `(x, y, sample_weight)`.
            training: True in `train_step`, False in `test_step`; pass it on
                to `self(x, training=training)` so noise and dropout follow.

        Returns:
            A non-empty dict of float scalar tensors. Under `tf.distribute`
            vtrain divides each replica's total by the replica count, as
            Keras does: return a global term (e.g. a KL of the weights) as
            it is, and average over examples with
            `vtrain.distribute.example_mean` (exact with an uneven last
            batch, where `ops.mean` is not), so both count once.

        Example:
        >>> import keras, vtrain
        >>> class M(vtrain.Model):
        ...     def compute_losses(self, data, training):
        ...         return {"zero": keras.ops.zeros(())}
        >>> sorted(M().compute_losses(None, training=False))
        ['zero']
        """
        raise NotImplementedError(
            f"{type(self).__name__} must override compute_losses(data, "
            "training) and return a dict {term name: scalar tensor}."
        )

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        """Configure training; takes no `loss` (the terms are the loss).

        Example:
        >>> import vtrain
        >>> class M(vtrain.Model):
        ...     pass
        >>> M().compile(optimizer="adam")
        """
        for name, value, fix in (
            ("loss", loss, "return the term from compute_losses"),
            (
                "metrics",
                metrics,
                (
                    "create keras.metrics in __init__ and "
                    "update them in compute_losses; they are "
                    "logged automatically"
                ),
            ),
        ):
            if value is not None:
                raise ValueError(
                    f"{type(self).__name__}.compile() received {name}="
                    f"{value!r}, but a vtrain.Model computes its loss terms in "
                    f"compute_losses. Remove {name}=...; instead, {fix}."
                )
        super().compile(optimizer=optimizer, **kwargs)
        # Keras's own "loss" tracker would shadow ours in the epoch logs.
        self._loss_tracker = None
        if type(self.optimizer) is keras.optimizers.LossScaleOptimizer:
            # Keras wraps the optimizer under mixed_float16; its finiteness
            # check densifies sparse embedding gradients (O(V * D) a step).
            self.optimizer = SparseLossScaleOptimizer(
                self.optimizer.inner_optimizer, name=self.optimizer.name
            )

    def compile_from_config(self, config):
        """Re-compile from a saved `.keras` file (restores the optimizer).

        Example:
        >>> import vtrain
        >>> class M(vtrain.Model):
        ...     pass
        >>> m = M()
        >>> m.compile_from_config({"optimizer": "sgd", "loss": None})
        >>> type(m.optimizer).__name__
        'SGD'
        """
        config = keras.saving.deserialize_keras_object(dict(config))
        for key in ("loss", "loss_weights", "metrics", "weighted_metrics"):
            config.pop(key, None)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self):
        return [self._trackers.total, self._trackers.terms, *super().metrics]

    def train_step(self, data):
        data = _without_missing(data)
        with tf.GradientTape() as tape:
            terms = self._terms(data, training=True)
            total = self._weighted_total(terms)
            # The optimizer sums gradients over replicas: divide by their
            # count so per-replica means and global terms both count once.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled = self.optimizer.scale_loss(total / replicas)
        variables = self.trainable_variables
        gradients = tape.gradient(scaled, variables)
        self._warn_if_densified(gradients, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        return self._update_trackers(total, terms, data)

    def test_step(self, data):
        data = _without_missing(data)
        terms = self._terms(data, training=False)
        total = self._weighted_total(terms)
        return self._update_trackers(total, terms, data)

    def __call__(self, *args, **kwargs):
        outputs = super().__call__(*args, **kwargs)
        calls = getattr(self._step_state, "calls", None)
        if calls is not None:
            # Under MirroredStrategy the replicas trace the step in turn, in
            # threads, sharing every layer's add_loss() list: keep this
            # replica's losses now, before compute_losses yields to another
            # replica (at an all-reduce, such as example_mean's).
            calls.append(self.losses)
        return outputs

    def fit(self, *args, callbacks=None, **kwargs):
        return super().fit(*args, callbacks=self._with_scheduler(callbacks), **kwargs)

    def set_epoch(self, epoch):
        """Set `model.epoch`, the scheduled weights and the learning rate.

        `fit` calls this at every epoch start; call it yourself in a custom
        loop (`train_on_batch`). Returns the values set, for logging.

        Example:
        >>> import vtrain
        >>> class M(vtrain.Model):
        ...     pass
        >>> m = M(loss_weights={"kl": vtrain.schedules.linear_warmup(1.0, 4)})
        >>> m.set_epoch(2)
        {'kl_weight': 0.5}
        """
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(
                f"Invalid epoch: received {epoch!r}. Expected a non-negative "
                "integer epoch index (0 for the first epoch)."
            )
        self.epoch.assign(epoch)
        values = {}
        for term, schedule in self.loss_weight_schedules.items():
            value = float(schedule(epoch))
            self.loss_weight_variables[term].assign(value)
            values[f"{term}_weight"] = value
        if self.learning_rate_schedule is not None:
            values["learning_rate"] = self._set_learning_rate(epoch)
        return values

    def get_config(self):
        config = super().get_config()
        config.update(
            loss_weights={
                term: self._serialize_schedule(
                    schedule,
                    f"loss_weights[{term!r}]",
                    fallback=float(self.loss_weight_variables[term].numpy()),
                )
                for term, schedule in self.loss_weight_schedules.items()
            },
            learning_rate=self._serialize_schedule(
                self.learning_rate_schedule, "learning_rate", fallback=None
            ),
        )
        return config

    def _serialize_schedule(self, schedule, what, fallback):
        if schedule is None:
            return None
        try:
            return keras.saving.serialize_keras_object(schedule)
        except TypeError:
            # Losing the whole save over a lambda would be worse: keep the
            # weights, and say loudly what the reloaded model will use.
            warnings.warn(
                f"{type(self).__name__}: the {what} schedule {schedule!r} is a "
                "plain callable and cannot be saved; the saved config holds "
                f"{fallback!r} instead (the value in force now). Use a "
                "vtrain.schedules factory to save the schedule itself.",
                stacklevel=2,
            )
            if fallback is None:
                return None
            return keras.saving.serialize_keras_object(schedules.constant(fallback))

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras builds state before the first trace only under tf.distribute.
        # vtrain always does: a trace that creates variables (weights,
        # optimizer slots, term trackers) makes TF trace the step twice.
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = next(batches)
                break
        # Under tf.distribute the batch holds one value per replica; build
        # from this process's first one. (Keras averages them with
        # strategy.reduce, which fails under MultiWorkerMirroredStrategy,
        # keras-team/keras#20585, and turns integer ids into floats.)
        strategy = self.distribute_strategy
        data_batch = tf.nest.map_structure(
            lambda t: (
                strategy.experimental_local_results(t)[0]
                if isinstance(t, tf.distribute.DistributedValues)
                else t
            ),
            data_batch,
        )
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def _symbolic_build(self, iterator=None, data_batch=None):
        if data_batch is not None and not self._trackers.by_name:
            self._discover_terms(data_batch)
        if self.optimizer is not None and not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

    def _discover_terms(self, data_batch):
        """Builds the model and the term trackers from one symbolic step."""
        symbolic = tf.nest.map_structure(
            lambda t: None if t is None else keras.KerasTensor(t.shape, t.dtype),
            _without_missing(data_batch),
        )

        def terms_of(data):
            # Keras records add_loss() (activity regularizers too) of a
            # symbolic call only in a scope that collects losses.
            with keras.StatelessScope(collect_losses=True, initialize_variables=False):
                return self._terms(data, training=True)

        try:
            terms = _keras_compat.compute_output_spec(terms_of, symbolic)
        except Exception:  # noqa: BLE001
            # E.g. predict() data without labels: the trackers are then made
            # on the first real trace, which also reports any genuine error.
            return
        for name in terms:
            self._tracker_for(name)

    def _tracker_for(self, name):
        if name not in self._trackers.by_name:
            self._trackers.by_name[name] = self._trackers.terms.add(
                _keras_compat.LowerIsBetterMean(name=name)
            )
        return self._trackers.by_name[name]

    def _with_scheduler(self, callbacks):
        if isinstance(callbacks, keras.callbacks.CallbackList):
            if not any(isinstance(c, EpochScheduler) for c in callbacks.callbacks):
                callbacks.callbacks.insert(0, EpochScheduler())
                callbacks.set_model(self)
            return callbacks
        callbacks = list(callbacks or [])
        if not any(isinstance(c, EpochScheduler) for c in callbacks):
            # First, so that every other callback sees this epoch's values.
            callbacks.insert(0, EpochScheduler())
        return callbacks

    def _set_learning_rate(self, epoch):
        value = float(self.learning_rate_schedule(epoch))
        if self.optimizer is None:
            raise RuntimeError(
                f"{type(self).__name__} has a learning_rate schedule but no "
                "optimizer. Call model.compile(optimizer=...) first."
            )
        try:
            self.optimizer.learning_rate = value
        except TypeError as error:
            raise TypeError(
                f"{type(self).__name__} received learning_rate= (a per-epoch "
                "schedule) but its optimizer was built with a "
                "LearningRateSchedule, which cannot be set. Use one of the two: "
                "drop learning_rate= from the model, or create the optimizer "
                "with a float learning rate."
            ) from error
        return value

    def _terms(self, data, training):
        """`compute_losses`'s terms, checked, plus `regularization` if any.

        The Keras losses are those of the last `self(...)` call inside
        `compute_losses` (as Keras's own step counts them), or `self.losses`
        at its end if it never calls the model itself.
        """
        self._step_state.calls = []
        try:
            terms = self._checked_terms(self.compute_losses(data, training=training))
        finally:
            calls, self._step_state.calls = self._step_state.calls, None
        losses = calls[-1] if calls else self._losses_without_a_call()
        if losses:
            terms[REGULARIZATION] = sum(ops.sum(ops.cast(x, "float32")) for x in losses)
        return terms

    def _losses_without_a_call(self):
        losses = self.losses
        weight_penalties = sum(v.regularizer is not None for v in self.trainable_variables)
        if len(losses) == weight_penalties or not tf.distribute.has_strategy():
            return losses
        local_replicas = len(tf.distribute.get_strategy().extended.worker_devices)
        if local_replicas > 1:
            raise ValueError(
                f"{type(self).__name__}.compute_losses never calls the model "
                "itself (self(x)), but its layers add losses in call() "
                "(add_loss() or an activity_regularizer) and it runs on "
                f"{local_replicas} local replicas, which share those layers: "
                "vtrain cannot tell which replica a loss belongs to. Expected "
                "compute_losses to call self(x, training=training); or return "
                "the value as a term of your own instead of add_loss()."
            )
        return losses

    def _warn_if_densified(self, gradients, variables):
        """Warns once per optimizer if it would apply a sparse gradient densely."""
        optimizer, warned = self.optimizer, self._trackers.warned_densified
        if id(optimizer) in warned or optimizers.is_row_wise(optimizer):
            return
        sparse = [v for g, v in zip(gradients, variables) if isinstance(g, tf.IndexedSlices)]
        if not sparse:
            return
        warned.add(id(optimizer))
        name = type(getattr(optimizer, "inner_optimizer", optimizer)).__name__
        tables = ", ".join(
            f"{v.path!r} (shape {tuple(v.shape)}, "
            f"{np.prod(v.shape) * np.dtype(v.dtype).itemsize / 1e6:.3g} MB)"
            for v in sparse
        )
        warnings.warn(
            f"{type(self).__name__} received sparse (tf.IndexedSlices) gradients "
            f"for {tables}, but its optimizer, {name}, applies them as dense "
            "updates: every step reads and writes the whole table and its "
            "optimizer state, however few rows the batch touched. Expected a "
            "row-wise optimizer for sparse gradients. Fix: model.compile("
            "optimizer=vtrain.optimizers.LazyAdam(...)) (Adam that updates only "
            "the rows in the batch; see its docstring for how absent rows "
            "differ), or SGD without momentum. To keep the dense update, "
            "silence this with warnings.simplefilter('ignore', "
            "vtrain.optimizers.DensifiedGradientWarning).",
            optimizers.DensifiedGradientWarning,
            stacklevel=2,
        )

    def _checked_terms(self, terms):
        if not isinstance(terms, dict) or not terms:
            raise TypeError(
                f"{type(self).__name__}.compute_losses must return a non-empty "
                f"dict {{term name: scalar tensor}}; it returned {terms!r}."
            )
        checked = {}
        for name, value in terms.items():
            _check_term_name(name, "compute_losses")
            value = ops.convert_to_tensor(value)
            if len(value.shape) != 0:
                raise ValueError(
                    f"Loss term {name!r} returned by compute_losses has shape "
                    f"{tuple(value.shape)}; expected a scalar. Reduce it, e.g. "
                    "with keras.ops.mean(...)."
                )
            checked[name] = ops.cast(value, "float32")
        unknown = sorted(set(self.loss_weight_schedules) - set(checked))
        if unknown:
            raise ValueError(
                f"loss_weights names {unknown}, but compute_losses returned "
                f"only the terms {sorted(checked)}. Fix the name in "
                "loss_weights or return that term."
            )
        return checked

    def _weighted_total(self, terms):
        total = 0.0
        for name, value in terms.items():
            weight = self.loss_weight_variables.get(name)
            total += value if weight is None else weight * value
        return total

    def _update_trackers(self, total, terms, data):
        batch_size = _batch_size(data)
        self._trackers.total.update_state(total, sample_weight=batch_size)
        for name, value in terms.items():
            self._tracker_for(name).update_state(value, sample_weight=batch_size)
        logs = self.get_metrics_result()
        strategy = tf.distribute.get_strategy()
        if _keras_compat.in_multi_worker_mode(strategy):
            # Keras 3.15 reduces the step's logs across workers with
            # strategy.reduce(..., axis=0), which fails on scalars. Epoch
            # logs are read from the trackers, so they stay exact.
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs


def _check_term_name(name, where):
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(
            f"Invalid loss term name {name!r} in {where}: expected a Python "
            "identifier-like string such as 'kl' or 'cross_entropy'."
        )
    if name == REGULARIZATION:
        raise ValueError(
            f"Invalid loss term name {name!r} in {where}: vtrain adds the "
            "'regularization' term itself, the sum of the model's Keras losses "
            "(layer regularizers and add_loss()). Rename your term; to change "
            "the regularization's weight, change the regularizer's own factor "
            "(e.g. keras.regularizers.L2(1e-4))."
        )
    if name in _RESERVED_NAMES or name.endswith("_weight"):
        raise ValueError(
            f"Invalid loss term name {name!r} in {where}: 'loss', "
            "'learning_rate' and names ending in '_weight' are used by the "
            "logs. Rename the term."
        )


def _functional_arguments(args, kwargs):
    """True for `(inputs, outputs)` given as Keras tensors, Keras-style.

    Unlike Keras's own test (any two positional arguments), a subclass whose
    constructor takes two sizes, `MyModel(20000, 490)`, is not functional.
    """
    if len(args) == 2:
        inputs, outputs = args
    elif len(args) == 1:
        inputs, outputs = args[0], kwargs.get("outputs")
    else:
        inputs, outputs = kwargs.get("inputs"), kwargs.get("outputs")
    tensors = tf.nest.flatten((inputs, outputs))
    return (
        inputs is not None
        and outputs is not None
        and all(isinstance(t, keras.KerasTensor) for t in tensors)
    )


_FUNCTIONAL_VARIANTS = {}


def _functional_variant(cls):
    """`cls` with `_keras_compat.Functional` in its bases, as a new class.

    Called functionally, `keras.Model.__init__` rewrites `__bases__` of the
    model's class and of every parent in place, so after one
    `VariationalModel(inputs, outputs)` every later subclassed vtrain model
    in the process would be _keras_compat.Functional (and fail). A separate subclass keeps
    the user's classes intact; it saves and loads under `cls`'s name.
    """
    if cls not in _FUNCTIONAL_VARIANTS:
        variant = type(
            cls.__name__,
            (cls, _keras_compat.Functional),
            {"__module__": cls.__module__, "__qualname__": cls.__qualname__},
        )
        _keras_compat.GLOBAL_CUSTOM_NAMES[variant] = keras.saving.get_registered_name(cls)
        _FUNCTIONAL_VARIANTS[cls] = variant
    return _FUNCTIONAL_VARIANTS[cls]


def _without_missing(data):
    """`(x, y, None)` -> `(x, y)`: the batch as the user passed it."""
    while isinstance(data, tuple) and len(data) > 1 and data[-1] is None:
        data = data[:-1]
    return data


def _batch_size(data):
    first = next(t for t in tf.nest.flatten(data) if t is not None and len(t.shape) > 0)
    return ops.cast(ops.shape(first)[0], "float32")


def _deserialize(value):
    if isinstance(value, dict):
        return keras.saving.deserialize_keras_object(value)
    return value
