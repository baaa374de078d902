"""`train_and_evaluate(config, workdir)`: the one place that reads a config.

It loads and vectorizes the data, builds the model named by the config,
trains it with the run-hygiene callbacks (validation F1@3, best checkpoint,
backup for resuming, TensorBoard), restores the best epoch's weights,
evaluates on the test split and writes `WORKDIR/results.json`.

Workdir layout::

    WORKDIR/config.json               the config of the run (a re-run must match)
    WORKDIR/backup/                   AtomicBackupAndRestore state (two backups, with
                                      sha256s), deleted when fit ends
    WORKDIR/checkpoints/best.keras    the model at its best validation F1@3
    WORKDIR/checkpoints/best.keras.sha256   its checksum, checked before it is loaded
    WORKDIR/checkpoints/best.json     that F1@3 and its epoch (0-based)
    WORKDIR/tensorboard/{train,validation}/   epoch logs
    WORKDIR/results.json              test metrics; present = the run is finished

Re-running into the same workdir resumes an interrupted run from its last
backup (an epoch end, or the batch where SIGTERM / Ctrl-C stopped it), and
only prints the results of a finished one.
"""

import difflib
import inspect
import json
import math
import os
import signal
import time

import keras
import ml_collections
import tensorflow as tf
from absl import logging

from vtrain import callbacks as vtrain_callbacks
from vtrain import distribute, optimizers, schedules
from vtrain import io as vtrain_io
from vtrain import model as vtrain_model
from vtrain.tagging import baseline, checkpoints, evaluate, metrics, serving, vocabulary_report
from vtrain.tagging.data import pipeline
from vtrain.tagging.data.loaders import DataError
from vtrain.tagging.models import MODELS, model_class
from vtrain.tagging.models.classifier import TagClassifier
from vtrain.tagging.models.itag import ITag
from vtrain.variational import VariationalModel

MONITOR_K = 3


class ConfigError(ValueError):
    """A config value is invalid; the message names the flag and the fix.

    Example:
    >>> str(ConfigError.invalid("data.batch_size", 0, "an integer >= 1"))
    'Invalid value for --config.data.batch_size: received 0. Expected an integer >= 1.'
    """

    @classmethod
    def invalid(cls, field, received, expected, fix=""):
        """The error for one field: what was received, what was expected, the fix."""
        message = f"Invalid value for --config.{field}: received {received!r}. Expected {expected}."
        return cls(message + (f" {fix}" if fix else ""))


def did_you_mean(name, choices, otherwise=""):
    """The fix for a `name` that is none of `choices`: the closest, else `otherwise`.

    Example:
    >>> did_you_mean("mirored", ["none", "mirrored"])
    "Did you mean 'mirrored'?"
    >>> did_you_mean("zzz", ["none"], "Remove it.")
    'Remove it.'
    """
    close = difflib.get_close_matches(str(name), sorted(choices), n=1)
    return f"Did you mean {close[0]!r}?" if close else otherwise


def train_and_evaluate(config, workdir, callbacks=(), baseline_workdir=None):
    """Trains `config`'s model into `workdir` and returns the results dict.

    A word classifier (`pooled`, `cnn`) or an `itag` model also gets its
    vocabulary report (`vtrain.tagging.vocabulary_report.compress_run` at
    `train.vocabulary_report_sizes` sizes on the test split): `vocabulary.json`, `vocabulary.md`, `vocabulary.png` and the
    pruned model in `pruned/`, written before `results.json`.

    Args:
        config: an `ml_collections.ConfigDict` like `configs/default.py`'s.
        workdir: the run's folder; created if missing. A finished run
            (`results.json` present) is not retrained; an interrupted one
            resumes from its last finished epoch.
        callbacks: extra Keras callbacks, run after vtrain's own.
        baseline_workdir: None, or a finished classifier run on the same
            vocabulary whose report gives the vocabulary report's frequency
            and TF-IDF curves and the F1 its drops are measured from.

    Returns:
        The dict written to `WORKDIR/results.json`: `test` metrics
        (`precision@k`, `recall@k`, `f1@k`, `ndcg@k` for k = 1, 3, 5),
        `validation` metrics of the restored best model, `best_epoch`,
        `vocabulary_size`, `kept_vocabulary`, `sparsity`, and the wall
        times of this session: `data_seconds` (loading and vectorizing),
        `fit_seconds` (training) and `seconds` (everything).

    Raises:
        ConfigError: a config value is invalid (also when the data or the
            model cannot be built from it), or differs from the one the
            workdir was started with.
        vtrain.tagging.data.loaders.DataError: the data file is missing or malformed.
        vtrain.preemption.Preempted: SIGTERM or SIGINT during training; the
            state is backed up at the next batch end, and a re-run resumes it.
        vtrain.io.DiskFullError: a checkpoint, backup or results write ran out
            of space; the previous files are intact, and a re-run resumes.
        vtrain.checksums.CorruptFileError: a backup, checkpoint or JSON state
            file was truncated or altered on disk and no intact one is left.
    """
    start = time.monotonic()
    workdir = os.path.abspath(workdir)
    results_path = os.path.join(workdir, "results.json")
    results = checkpoints.read_json(
        results_path,
        fix="Remove it: re-running the same command then evaluates the trained model again.",
    )
    if results is not None:
        logging.info("%s exists: the run is finished, not retraining.", results_path)
        print(evaluate.format_table(results))
        return results
    if config.model.name == baseline.NAME:
        return train_and_evaluate_tfidf(config, workdir)

    check_workdir(workdir)
    # First: splitting the CPU for `mirrored` is only possible before any
    # TensorFlow op, and check_config already creates an optimizer.
    strategy = make_strategy(config.strategy)
    check_config(config)
    workdir = _worker_workdir(workdir, config.strategy)
    config_path = os.path.join(workdir, "config.json")
    _check_same_config(config, config_path)
    logging.info("Workdir %s; config:\n%s", workdir, config)
    for folder in (workdir, os.path.join(workdir, "checkpoints"), os.path.join(workdir, "backup")):
        for path in vtrain_io.remove_temporaries(folder):
            logging.info("Removed %s, left by a killed write.", path)
    keras.utils.set_random_seed(config.seed)

    data = load_checked_data(config)
    _check_batch_size(config.data.batch_size, data.num_train)
    data_seconds = time.monotonic() - start
    logging.info(
        "Data: %d train examples, %d tags, %d vocabulary rows, sequence length %d (%.0f s).",
        data.num_train,
        data.num_tags,
        data.vocabulary_size,
        data.sequence_length,
        data_seconds,
    )

    with strategy.scope():
        model = _build_and_compile(config, data)
    # Recorded only now, so a run that stopped on a config or data error
    # can be re-run into the same workdir with the fix.
    if not os.path.exists(config_path):
        os.makedirs(workdir, exist_ok=True)
        vtrain_io.atomic_write_json(config_path, config.to_dict(), sort_keys=False)

    validation = _validation_callback(model, data.validation)
    best_path = os.path.join(workdir, "checkpoints", "best.keras")
    best = checkpoints.BestCheckpoint(
        best_path, monitor=validation.monitor, mode=getattr(validation, "mode", "max")
    )
    # SIGTERM (a scheduler's preemption) or Ctrl-C: back up at the next
    # batch end and exit with 128 + the signal's number (see main).
    backup = vtrain_callbacks.AtomicBackupAndRestore(
        os.path.join(workdir, "backup"), save_on_signals=(signal.SIGTERM, signal.SIGINT)
    )
    if best.finished:
        # Crashed between the end of fit and results.json: do not retrain.
        logging.info("Training finished in an earlier session; evaluating it.")
        model(next(iter(data.validation))[0])  # builds the weights to load into
        model.optimizer.build(model.trainable_variables)
        epochs_run = 0
    else:
        try:
            history = model.fit(
                backup.resumable(data.train),  # a mid-epoch backup resumes at its next batch
                validation_data=data.validation,
                epochs=config.train.num_epochs,
                callbacks=[
                    pipeline.EpochShuffle(data),  # epoch e's batches, resumed or not
                    # Order matters: a non-finite loss stops fit before anything
                    # is saved; the next two add to the epoch logs that the
                    # checkpoint and TensorBoard read; the backup is written last,
                    # so a resumed run never restarts before a saved best.
                    vtrain_callbacks.NaNGuard(),
                    validation,
                    evaluate.VocabularyLogger(),
                    best,
                    keras.callbacks.TensorBoard(
                        os.path.join(workdir, "tensorboard"), write_graph=False
                    ),
                    backup,
                    *callbacks,
                ],
                shuffle=False,  # the train split is shuffled by the pipeline
                verbose=1,
            )
        finally:
            # Keras skips on_train_end when fit raises: put the handlers back.
            backup.release_signals()
        epochs_run = len(history.history.get("loss", []))
    fit_seconds = time.monotonic() - start - data_seconds

    # The test split is measured on the best validation epoch, not the last.
    checkpoints.verify_best(
        best_path, fix="Remove the workdir's checkpoints/ and backup/ to train again."
    )
    model.load_weights(best_path)
    logging.info(
        "Restored the weights of epoch %d (%s %.4f).",
        best.best_epoch + 1,
        validation.monitor,
        best.best,
    )
    logging.info("Evaluating on the test split.")
    test = _evaluate_split(model, data.test, progress=True)
    validation_metrics = _evaluate_split(model, data.validation)
    # A model may report its simplest baseline's figure beside its own
    # (the VAE: the unigram perplexity), measured on the same split.
    reference = getattr(model, "reference_metrics", None)
    if reference is not None:
        extra = reference(data.train, {"test": data.test, "validation": data.validation})
        test.update(extra["test"])
        validation_metrics.update(extra["validation"])
    _write_vocabulary_report(
        model, data, workdir, config.train.vocabulary_report_sizes, baseline_workdir
    )
    results = {
        "model": config.model.name,
        "test": test,
        "validation": validation_metrics,
        "best_epoch": best.best_epoch + 1,
        "num_epochs": config.train.num_epochs,
        "epochs_run_in_last_session": epochs_run,
        **evaluate.vocabulary_stats(model),
        **evaluate.weight_stats(model),
        "num_train": data.num_train,
        "num_tags": data.num_tags,
        "data_seconds": data_seconds,
        "fit_seconds": fit_seconds,
        "seconds": time.monotonic() - start,
        "workdir": workdir,
    }
    _write_suggest_outputs(model, data, workdir, results)
    vtrain_io.atomic_write_json(results_path, results, sort_keys=False)
    print(evaluate.format_table(results))
    return results


def load_data(config):
    """The run's `TagData`, built from `config.data` and `config.seed`.

    Deterministic: the same config gives the same vocabulary and splits, so
    a finished run's data can be rebuilt from its `config.json`.
    """
    return pipeline.load_tag_data(
        config.data.path or None,
        sequence_length=config.data.sequence_length,
        min_word_count=config.data.min_word_count,
        max_vocabulary_size=config.data.max_vocabulary_size,
        lowercase=config.data.lowercase,
        strip_punctuation=config.data.strip_punctuation,
        batch_size=config.data.batch_size,
        eval_batch_size=config.data.eval_batch_size,
        min_tag_train_uses=config.data.min_tag_train_uses,
        max_train_examples=config.data.max_train_examples,
        seed=config.seed,
    )


def load_checked_data(config):
    """`load_data(config)`, failing as the launcher reports it.

    Raises:
        vtrain.tagging.data.loaders.DataError: the data file is missing or
            malformed (the message names the file and line).
        ConfigError: the data cannot be built with these settings (an empty
            split or vocabulary, an argument out of range).
    """
    try:
        return load_data(config)
    except DataError:
        raise
    except ValueError as error:
        raise ConfigError(f"Cannot build the data of --config.data: {error}") from error


def train_and_compare(config, baseline_config, workdir, callbacks=()):
    """Trains `config` and a baseline on the same test split; prints them side by side.

    `config` goes into `workdir`, `baseline_config` into `workdir/baseline`
    (each resumable, as `train_and_evaluate`; the baseline is trained
    first). Both test metrics are written to `WORKDIR/comparison.json` as
    `{run name: test metrics}`. When both are word classifiers on the same
    vocabulary, the vocabulary report in `workdir` takes its frequency and
    TF-IDF curves and its reference F1 from the baseline (the
    non-variational full-vocabulary model the reference work compares with).

    Raises:
        ConfigError: the two configs would not share the test split (their
            `data.path` or `data.min_tag_train_uses` differ).
    """
    for field in ("path", "min_tag_train_uses"):
        if config.data[field] != baseline_config.data[field]:
            raise ConfigError.invalid(
                f"data.{field}",
                config.data[field],
                f"the baseline's value, {baseline_config.data[field]!r}: both runs "
                "must be measured on the same test split",
                f"Set --config.data.{field} or --baseline.data.{field} so they match.",
            )
    # The baseline first: a classifier's vocabulary report then measures the
    # frequency and TF-IDF rankings on the baseline's model (see compress_run).
    baseline_workdir = os.path.join(workdir, "baseline")
    baseline = train_and_evaluate(baseline_config, baseline_workdir, callbacks)
    same_vocabulary = all(
        config.data[field] == baseline_config.data[field] for field in _VOCABULARY_FIELDS
    )
    has_report = os.path.isfile(os.path.join(baseline_workdir, "vocabulary.json"))
    results = train_and_evaluate(
        config,
        workdir,
        callbacks,
        baseline_workdir=baseline_workdir if same_vocabulary and has_report else None,
    )
    names = [config.model.name, f"baseline {baseline_config.model.name}"]
    if names[0] == baseline_config.model.name:
        names[0] += " (--config)"
    vtrain_io.atomic_write_json(
        os.path.join(workdir, "comparison.json"),
        {names[0]: results["test"], names[1]: baseline["test"]},
        sort_keys=False,
    )
    print(evaluate.format_comparison({names[0]: results, names[1]: baseline}))
    return {names[0]: results, names[1]: baseline}


def build_model(config, data):
    """The config's model, uncompiled: the one place that reads `config.model`.

    Each field of `config.model` but `name` is a constructor argument of the
    model class (`vtrain.tagging.models.MODELS`), except the schedule fields
    that become one (`_SCHEDULE_FIELDS`); `data_arguments(data)` adds what
    the data fixes. A variational model's KL weight is
    `weight_decay = weight_decay_scale / num_train`, warmed up linearly.

    Raises:
        ConfigError: an unknown field (with the close names), or a value the
            model refuses.
    """
    options = config.model.to_dict()
    name = options.pop("name")
    cls = model_class(name)
    arguments = {
        "learning_rate": schedules.exponential_decay(
            config.train.learning_rate, config.train.learning_rate_decay
        )
    }
    if issubclass(cls, VariationalModel):
        arguments["weight_decay"] = schedules.linear_warmup(
            config.train.weight_decay_scale / max(data.num_train, 1),
            warmup_epochs=config.train.weight_decay_warmup_epochs,
        )
    for field, make in _SCHEDULE_FIELDS.get(name, {}).items():
        if field in options:
            make(options, arguments, data)
    data_arguments = cls.data_arguments(data)
    allowed = _constructor_fields(cls) - set(data_arguments) - set(arguments)
    for field in sorted(set(options) - allowed):
        raise ConfigError.invalid(
            f"model.{field}",
            options[field],
            f"a field of model {name!r} ({cls.__name__}): one of {', '.join(sorted(allowed))}",
            did_you_mean(field, allowed, "Remove it from the config's model section."),
        )
    try:
        return cls(**{**data_arguments, **options, **arguments})
    except ValueError as error:
        raise ConfigError(f"Cannot build model {name!r} from --config.model: {error}") from error


def _constructor_fields(cls):
    """Keyword arguments of `cls.__init__` and its bases, up to `vtrain.Model`."""
    names = set()
    for klass in cls.__mro__:
        if klass in (VariationalModel, vtrain_model.Model):
            break
        parameters = inspect.signature(klass.__init__).parameters.values()
        names.update(
            p.name
            for p in parameters
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"
        )
    return names


def _triplet_l2(options, arguments, data):
    del data
    weight, decay = options.pop("l2_weight", 1e-6), options.pop("l2_decay", 1.0)
    arguments["loss_weights"] = {"l2": schedules.exponential_decay(weight, decay)}


KL_SCHEDULES = ("cyclical", "linear_warmup")


def _vae_kl(options, arguments, data):
    kind = options.pop("kl_schedule", "cyclical")
    epochs = options.pop("kl_anneal_epochs", 8)
    cycles, ratio = options.pop("kl_cycles", 2), options.pop("kl_ratio", 0.5)
    if kind not in KL_SCHEDULES:
        raise ConfigError.invalid("model.kl_schedule", kind, f"one of {', '.join(KL_SCHEDULES)}")
    arguments["loss_weights"] = {
        "kl": (
            schedules.cyclical(1.0, total_epochs=epochs, cycles=cycles, ratio=ratio)
            if kind == "cyclical"
            else schedules.linear_warmup(1.0, warmup_epochs=epochs)
        )
    }


def _vae_max_words(options, arguments, data):
    max_words = options.pop("max_words")
    size = len(data.vocabulary)
    arguments["vocabulary_size"] = min(size, max_words) if max_words else size


# config.model fields that are not constructor arguments: each makes one.
_SCHEDULE_FIELDS = {
    "triplet": {"l2_weight": _triplet_l2, "l2_decay": _triplet_l2},
    "vae": {
        "kl_schedule": _vae_kl,
        "kl_anneal_epochs": _vae_kl,
        "kl_cycles": _vae_kl,
        "kl_ratio": _vae_kl,
        "max_words": _vae_max_words,
    },
}


def _build_and_compile(config, data):
    """The config's model, compiled (call it inside the strategy's scope)."""
    model = build_model(config, data)
    # A factor of 1 is no multiplier: configs may name log_alpha for models
    # that have none (a plain embedding).
    multipliers = {
        key: float(factor)
        for key, factor in config.train.learning_rate_multipliers.items()
        if float(factor) != 1.0
    }
    try:
        optimizer = optimizers.get(
            config.train.optimizer,
            config.train.learning_rate,
            learning_rate_multipliers=multipliers or None,
        )
    except (TypeError, ValueError) as error:
        raise ConfigError.invalid(
            "train.learning_rate_multipliers",
            multipliers,
            "factors for an optimizer that supports them (lazy_adam or sgd)",
            str(error),
        ) from error
    model.compile(optimizer=optimizer)
    return model


# Logical CPU devices `mirrored` trains on when there is no GPU.
MIRRORED_CPU_DEVICES = 2


def make_strategy(name):
    """The `tf.distribute` strategy `--config.strategy` names.

    `"mirrored"` without a GPU splits the CPU into `MIRRORED_CPU_DEVICES`
    logical devices first, which TensorFlow allows only before its first
    op: the launcher calls this before loading any data.

    Example:
    >>> make_strategy("none").num_replicas_in_sync
    1
    >>> make_strategy("mirored")
    Traceback (most recent call last):
    ...
    vtrain.tagging.train.ConfigError: Invalid value for --config.strategy: received 'mirored'. \
Expected one of none, mirrored, multi_worker. Did you mean 'mirrored'?
    """
    if name not in distribute.STRATEGIES:
        raise ConfigError.invalid(
            "strategy",
            name,
            f"one of {', '.join(distribute.STRATEGIES)}",
            did_you_mean(name, distribute.STRATEGIES),
        )
    try:
        if name == "mirrored" and not tf.config.list_physical_devices("GPU"):
            distribute.split_cpu(MIRRORED_CPU_DEVICES)
        return distribute.get_strategy(name)
    except (RuntimeError, ValueError) as error:
        raise ConfigError(f"Cannot use --config.strategy={name}: {error}") from error


def _worker_workdir(workdir, strategy):
    """`workdir` for the chief; a private `workdir/<task type>-<index>` for others.

    Under `multi_worker` every worker runs the same callbacks (saving can
    need every worker), so only the chief may write the real files.
    """
    if strategy != "multi_worker":
        return workdir
    tf_config = distribute.check_tf_config(os.environ.get("TF_CONFIG"))
    role, index = tf_config["task"]["type"], tf_config["task"]["index"]
    chief = role == "chief" or (
        role == "worker" and index == 0 and "chief" not in tf_config["cluster"]
    )
    return workdir if chief else os.path.join(workdir, f"{role}-{index}")


# The models whose runs get a vocabulary report: they rank tags
# (`recommend`) from one word embedding.
REPORTED_MODELS = (TagClassifier, ITag)
# The data fields that make the vocabulary and the test split.
_VOCABULARY_FIELDS = (
    "path",
    "min_tag_train_uses",
    "min_word_count",
    "max_vocabulary_size",
    "lowercase",
    "strip_punctuation",
    "max_train_examples",
)


def _write_vocabulary_report(model, data, workdir, num_sizes, baseline_workdir=None):
    """`compress_run`'s reports for a `REPORTED_MODELS` model; nothing for others or 0 sizes."""
    if not isinstance(model, REPORTED_MODELS) or num_sizes == 0:
        return None
    baseline = None
    if baseline_workdir:
        baseline = baseline_report(baseline_workdir, num_sizes=num_sizes)
    logging.info("Writing the vocabulary report (%d sizes per ranking).", num_sizes)
    return vocabulary_report.compress_run(
        model, data, workdir, num_sizes=num_sizes, baseline=baseline
    )


def compress_workdir(workdir, num_sizes=100, split="test", k=3, baseline_workdir=None):
    """Runs `vocabulary_report.compress_run` on a finished run of `vtrain.main`.

    Loads `WORKDIR/checkpoints/best.keras` and rebuilds the run's data from
    `WORKDIR/config.json` (the pipeline is deterministic: same vocabulary,
    same splits), then writes the reports of `vocabulary_report.compress_run` into WORKDIR.

    With `baseline_workdir` (a finished non-variational run on the same
    data, e.g. WORKDIR/baseline of `vtrain.main --baseline=...`), the
    frequency and TF-IDF curves and the reference F1 are the baseline's:
    its report is read, or first written by `compress_workdir` on it when
    it is missing or was measured with other `num_sizes`, `split` or `k`.

    Returns the dict written to `WORKDIR/vocabulary.json`.
    """
    baseline = None
    if baseline_workdir:
        baseline = baseline_report(baseline_workdir, num_sizes, split, k)
    workdir = os.path.abspath(workdir)
    config_path = os.path.join(workdir, "config.json")
    model_path = os.path.join(workdir, "checkpoints", "best.keras")
    for needed in (config_path, model_path):
        if not os.path.isfile(needed):
            raise FileNotFoundError(
                f"{needed} is missing; expected a workdir of a run started by "
                "`python -m vtrain.main --config=... --workdir=...` that has "
                "saved its best checkpoint."
            )
    with open(config_path) as f:
        config = ml_collections.ConfigDict(json.load(f))
    data = load_data(config)
    model = keras.saving.load_model(model_path, compile=False)
    return vocabulary_report.compress_run(
        model, data, workdir, num_sizes=num_sizes, split=split, k=k, baseline=baseline
    )


def baseline_report(workdir, num_sizes=100, split="test", k=3):
    """The report of the finished run in `workdir`, measured with these settings.

    Read from `WORKDIR/vocabulary.json`, or (re)computed by `compress_workdir`
    when it is missing or was measured with another `num_sizes`, `split` or
    `k`.
    """
    try:
        report = vocabulary_report.read_report(workdir)
    except FileNotFoundError:
        report = None
    wanted = {"num_sizes": num_sizes, "split": split, "k": k}
    if report is None or any(report.get(key) != value for key, value in wanted.items()):
        report = compress_workdir(workdir, num_sizes=num_sizes, split=split, k=k)
    return report


def _validation_callback(model, dataset):
    """The model's `validation_callback(dataset)` if it has one, else F1@3.

    A model that ranks no tags (e.g. the VAE) chooses its own validation
    metric: a callback that adds `.monitor` to the epoch logs and says in
    `.mode` whether higher (`"max"`) or lower is better.
    """
    own = getattr(model, "validation_callback", None)
    if own is not None:
        return own(dataset)
    return evaluate.RankingValidation(dataset, k=MONITOR_K)


def _evaluate_split(model, dataset, progress=False):
    """The model's `evaluate_split(dataset, progress)` if it has one, else ranking."""
    own = getattr(model, "evaluate_split", None)
    if own is not None:
        return own(dataset, progress=progress)
    return evaluate.ranking_results(model, dataset, progress=progress)


# (section, field) -> the valid values, as the error message says them.
_POSITIVE = "an integer >= 1"
_COUNT = "an integer >= 0 (0 means no limit)"
_FIELDS = {
    ("data", "sequence_length"): _POSITIVE,
    ("data", "min_word_count"): _POSITIVE,
    ("data", "max_vocabulary_size"): _COUNT,
    ("data", "batch_size"): _POSITIVE,
    ("data", "eval_batch_size"): _POSITIVE,
    ("data", "min_tag_train_uses"): _POSITIVE,
    ("data", "max_train_examples"): _COUNT,
    ("train", "num_epochs"): _POSITIVE,
    ("train", "weight_decay_warmup_epochs"): "an integer >= 0",
    ("train", "vocabulary_report_sizes"): "an integer >= 0 (0 writes no vocabulary report)",
}


def check_config(config):
    """Raises `ConfigError` for the first invalid value in `config`.

    Example:
    >>> import ml_collections
    >>> config = ml_collections.ConfigDict({"data": {"path": "x.jsonl"}})
    >>> check_config(config)
    Traceback (most recent call last):
    ...
    vtrain.tagging.train.ConfigError: Invalid value for --config.data.path: received 'x.jsonl'. \
Expected an existing JSONL, JSON or TSV file with fields text and tags (or "" for the \
bundled dataset). The file was not found (relative paths start in ...).
    """
    path = config.data.path
    if path and not os.path.isfile(path):
        raise ConfigError.invalid(
            "data.path",
            path,
            'an existing JSONL, JSON or TSV file with fields text and tags (or "" '
            "for the bundled dataset)",
            f"The file was not found (relative paths start in {os.getcwd()}).",
        )
    for (section, field), expected in _FIELDS.items():
        value = config[section][field]
        minimum = 1 if expected == _POSITIVE else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError.invalid(f"{section}.{field}", value, expected)
    seed = config.seed
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ConfigError.invalid(
            "seed", seed, "an integer from 0 to 2**32 - 1 (NumPy's seed range)"
        )
    for field in ("learning_rate", "weight_decay_scale"):
        value = config.train[field]
        if (
            not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value < 0
            or (field == "learning_rate" and value == 0)
        ):
            raise ConfigError.invalid(
                f"train.{field}",
                value,
                "a positive finite number"
                if field == "learning_rate"
                else "a finite number >= 0 (0 turns the KL term off)",
            )
    for key, factor in config.train.get("learning_rate_multipliers", {}).items():
        if (
            isinstance(factor, bool)
            or not isinstance(factor, (int, float))
            or not math.isfinite(factor)
            or factor <= 0
        ):
            raise ConfigError.invalid(
                f"train.learning_rate_multipliers.{key}",
                factor,
                "a positive finite factor on the learning rate (1 = none)",
            )
    decay = config.train.learning_rate_decay
    if not isinstance(decay, (int, float)) or not 0 < decay <= 1:
        raise ConfigError.invalid(
            "train.learning_rate_decay",
            decay,
            "a factor in (0, 1] applied once per epoch (1 = constant)",
        )
    threshold = config.model.get("threshold", 0.0)
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float))
        or (not math.isfinite(threshold))
    ):
        raise ConfigError.invalid(
            "model.threshold",
            threshold,
            "a finite number: the log_alpha at or above which a word is dropped "
            "(3.0 is the usual value)",
        )
    if config.model.name not in MODELS and config.model.name != baseline.NAME:
        raise ConfigError.invalid(
            "model.name",
            config.model.name,
            f"one of {', '.join(sorted(MODELS))} (Keras models) "
            f"or {baseline.NAME} (the scikit-learn baseline)",
            did_you_mean(config.model.name, [*MODELS, baseline.NAME]),
        )
    try:
        optimizers.get(config.train.optimizer)
    except (TypeError, ValueError) as error:
        raise ConfigError.invalid(
            "train.optimizer", config.train.optimizer, f"a vtrain.optimizers name ({error})"
        ) from None


def check_workdir(workdir):
    """Raises `ConfigError` unless `workdir` is, or can be made, a writable folder.

    Checked before anything is read or written, so a bad --workdir costs
    nothing and leaves nothing behind.

    Example:
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as file:
    ...     check_workdir(file.name)
    Traceback (most recent call last):
    ...
    vtrain.tagging.train.ConfigError: Invalid value for --workdir: received '...'. Expected \
a folder (existing or new), but it is a file. Pass a folder path, e.g. runs/my-run.
    """
    existing = workdir
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        what = "it is a file" if existing == workdir else f"{existing!r} is a file"
        raise ConfigError(
            f"Invalid value for --workdir: received {workdir!r}. Expected a folder "
            f"(existing or new), but {what}. Pass a folder path, e.g. runs/my-run."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "it" if existing == workdir else f"{existing!r}, where it would be created,"
        raise ConfigError(
            f"Invalid value for --workdir: received {workdir!r}. Expected a folder "
            f"this user can write to, but {what} is read-only. Make it writable "
            "(chmod u+w), or pass another --workdir."
        )


def _check_batch_size(batch_size, num_train):
    if batch_size > num_train:
        raise ConfigError.invalid(
            "data.batch_size",
            batch_size,
            f"at most the number of training examples, {num_train:,}",
            "A larger batch makes every epoch a single step on all the data. "
            "Lower --config.data.batch_size, or use more data "
            "(--config.data.max_train_examples=0 uses all).",
        )


# How a run executes, not what it computes: a run may resume with another.
_EXECUTION_FIELDS = ("strategy",)


def _check_same_config(config, path):
    """Refuses to resume a workdir whose recorded config (`path`) differs.

    `strategy` may differ (e.g. resume on more devices): the weights and the
    global batch are the same either way.
    """
    current = config.to_dict()
    saved = checkpoints.read_json(path)
    if saved is None:
        return
    for field in _EXECUTION_FIELDS:
        current.pop(field, None)
        saved.pop(field, None)
    differences = sorted(_differences(saved, current))
    if differences:
        raise ConfigError.invalid(
            differences[0],
            _lookup(current, differences[0]),
            f"{_lookup(saved, differences[0])!r}, the value this workdir was started with ({path})",
            f"Fields that differ: {', '.join(differences)}. Resume with the same "
            "config, or train into a new --workdir.",
        )


def _differences(saved, current, prefix=""):
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            yield from _differences(a, b, f"{prefix}{key}.")
        elif a != b and not (isinstance(b, tuple) and list(b) == a):
            yield f"{prefix}{key}"


def _lookup(tree, dotted):
    for key in dotted.split("."):
        tree = tree.get(key) if isinstance(tree, dict) else None
    return tree


# --- The TF-IDF baseline, and what `vtrain.suggest` and serving read -------

_SPLITS = ("train", "validation", "test")


def train_and_evaluate_tfidf(config, workdir):
    """`train_and_evaluate` for `config.model.name == "tfidf"` (configs/tfidf.py).

    Fits `vtrain.tagging.baseline.TfidfTagger` on the raw training texts of
    the same examples and tags as the Keras models (`baseline.text_splits`
    of `config.data.path`, `min_tag_train_uses`, `max_train_examples`; the
    other data fields shape the Keras vocabulary and do not apply), with
    `config.model`'s fields as its arguments and `config.seed` as
    liblinear's. Writes `WORKDIR/config.json`, `WORKDIR/tfidf.joblib` (the
    fitted baseline, for `vtrain.suggest`) and `WORKDIR/results.json` with
    the Keras runs' metric keys (`test` and `validation` P/R/F1/NDCG@k,
    the `threshold` chosen on validation and its `f1@threshold`,
    `num_features`, `num_train`, `num_tags`, `data_seconds`, `fit_seconds`,
    `seconds`). A run stopped before `results.json` is fitted again.

    Raises:
        ConfigError: an invalid config value, an unknown `config.model`
            field, or scikit-learn missing (the message names the extra).
        vtrain.tagging.data.loaders.DataError: the data file is missing or malformed.
    """
    start = time.monotonic()
    workdir = os.path.abspath(workdir)
    check_workdir(workdir)
    check_config(config)
    options = config.model.to_dict()
    options.pop("name")
    allowed = _constructor_fields(baseline.TfidfTagger) - {"random_state"}
    for field in sorted(set(options) - allowed):
        raise ConfigError.invalid(
            f"model.{field}",
            options[field],
            f"a field of model {baseline.NAME!r}: one of {', '.join(sorted(allowed))}",
            did_you_mean(field, allowed, "Remove it from the config's model section."),
        )
    try:
        tagger = baseline.TfidfTagger(random_state=config.seed, **options)
    except ImportError as error:
        raise ConfigError(f"Cannot use --config.model.name={baseline.NAME}: {error}") from None
    except ValueError as error:
        raise ConfigError(
            f"Cannot build model {baseline.NAME!r} from --config.model: {error}"
        ) from error
    config_path = os.path.join(workdir, "config.json")
    _check_same_config(config, config_path)
    for path in vtrain_io.remove_temporaries(workdir) if os.path.isdir(workdir) else ():
        logging.info("Removed %s, left by a killed write.", path)
    try:
        splits = baseline.text_splits(
            config.data.path or None, config.data.min_tag_train_uses, config.data.max_train_examples
        )
    except DataError:
        raise
    except ValueError as error:
        raise ConfigError(f"Cannot build the data of --config.data: {error}") from error
    tags = splits["tags"]
    texts = {name: [example["text"] for example in splits[name]] for name in _SPLITS}
    labels = {name: baseline.multi_hot(splits[name], tags) for name in _SPLITS}
    data_seconds = time.monotonic() - start
    if not os.path.exists(config_path):
        os.makedirs(workdir, exist_ok=True)
        vtrain_io.atomic_write_json(config_path, config.to_dict(), sort_keys=False)
    logging.info(
        "Fitting TF-IDF + logistic regression: %d train examples, %d tags.",
        len(texts["train"]),
        len(tags),
    )
    tagger.fit(texts["train"], labels["train"], tags)
    fit_seconds = time.monotonic() - start - data_seconds
    tagger.save(os.path.join(workdir, baseline.FILE_NAME))
    scores = {name: tagger.scores(texts[name]) for name in ("validation", "test")}
    threshold, _ = evaluate.best_threshold(scores["validation"], labels["validation"])
    split_results = {
        name: {
            **metrics.ranking_metrics(scores[name], labels[name], ks=evaluate.KS),
            **evaluate.threshold_metrics(scores[name], labels[name], threshold),
        }
        for name in ("test", "validation")
    }
    results = {
        "model": baseline.NAME,
        **split_results,
        "threshold": threshold,
        "num_features": tagger.num_features,
        "num_train": len(texts["train"]),
        "num_tags": len(tags),
        "data_seconds": data_seconds,
        "fit_seconds": fit_seconds,
        "seconds": time.monotonic() - start,
        "workdir": workdir,
    }
    vtrain_io.atomic_write_json(os.path.join(workdir, "results.json"), results, sort_keys=False)
    print(evaluate.format_table(results))
    return results


def _write_suggest_outputs(model, data, workdir, results):
    """A word classifier's score threshold, `tagger.json` and `serving/`; else nothing.

    Adds to `results` the threshold on the tag scores (sigmoid of the
    logits) that maximises the example-based F1 on the validation split
    (`evaluate.best_threshold`), and `precision@threshold`,
    `recall@threshold`, `f1@threshold`, `tags@threshold` of both splits;
    writes the tag names and the vectorizer for `vtrain.suggest`
    (`serving.write_tagger`), and the SavedModel (`serving.export`).
    """
    if not isinstance(model, TagClassifier):
        return
    scores = {
        name: evaluate.tag_scores(model, getattr(data, name)) for name in ("validation", "test")
    }
    threshold, _ = evaluate.best_threshold(*scores["validation"])
    for name, (split_scores, labels) in scores.items():
        results[name].update(evaluate.threshold_metrics(split_scores, labels, threshold))
    results["threshold"] = threshold
    serving.write_tagger(workdir, results["model"], data.tags, data.vectorizer)
    logging.info("Writing the serving export to %s.", os.path.join(workdir, serving.FOLDER))
    serving.export(model, data.vectorizer, data.tags, os.path.join(workdir, serving.FOLDER))
