"""Helpers shared by the benchmark scripts: machine line, data, models, timing.

Not a benchmark itself; see `benchmarks/README.md` for the scripts. Every
script times *alternating* runs (A, B, A, B, ...) and reports medians: the
machine is shared, and alternation spreads any slow period over all the
configurations instead of over one of them.
"""

import argparse
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import vtrain  # noqa: E402
from vtrain.optimizers import LazyAdam  # noqa: E402

# The shapes of issue 5 (and of DESIGN.md section 5's plain-Keras figures).
DIM = 128
BATCH_SIZE = 256
TOKENS = 50
CLASSES = 64
LEARNING_RATE = 1e-3


# --------------------------------------------------------------------------
# Machine


def cpu_model():
    """The CPU model name from /proc/cpuinfo (or `platform.processor()`)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average():
    """The 1, 5 and 15 minute load averages, as a string."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_line():
    """One line naming the machine, the versions and the load right now."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    return (
        f"{cpu_model()}, {os.cpu_count()} cores ({usable} usable), "
        f"Python {platform.python_version()}, TF {tf.__version__}, "
        f"Keras {keras.__version__}; load average {load_average()}"
    )


_LOADS = []  # 1-minute load averages seen at start and at the verdicts


def print_header(title, args):
    _LOADS.append(os.getloadavg()[0])
    print(f"# {title}")
    print(f"machine: {machine_line()}")
    print(f"command: python -m {sys.modules['__main__'].__spec__.name} " + " ".join(sys.argv[1:]))
    print(f"settings: {vars(args)}")
    sys.stdout.flush()


def add_common_flags(parser, repeats=5, steps=20, warmup=3):
    """Flags every timing script takes: shapes, repeats, steps, XLA."""
    parser.add_argument("--dim", type=int, default=DIM, help="embedding size D")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--tokens", type=int, default=TOKENS, help="ids per example")
    parser.add_argument("--classes", type=int, default=CLASSES)
    parser.add_argument(
        "--ids",
        choices=("zipf", "uniform"),
        default="zipf",
        help="token id distribution: zipf (rank-frequency 1/r, like text) or "
        "uniform (the most distinct rows per batch: the worst case for the "
        "row-wise update and for the cache)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=repeats,
        help="alternating runs per configuration (median reported)",
    )
    parser.add_argument("--steps", type=int, default=steps, help="timed steps per run")
    parser.add_argument(
        "--warmup",
        type=int,
        default=warmup,
        help="untimed steps at the start of every run",
    )
    parser.add_argument(
        "--jit-compile",
        action="store_true",
        help="compile(jit_compile=True); the default is Keras's 'auto' (no XLA on CPU)",
    )
    return parser


# --------------------------------------------------------------------------
# Data


def add_kl_refresh_flag(parser):
    """`--kl-refresh-steps K ...`: one `fastK` configuration per K (none: no fast mode)."""
    parser.add_argument(
        "--kl-refresh-steps",
        type=int,
        nargs="*",
        default=[8, 32],
        help="one `fastK` configuration per K (none: skip the fast mode)",
    )
    return parser


def token_ids(vocab, n, tokens, distribution="zipf", seed=0):
    """`[n, tokens]` int32 ids in `[0, vocab)`.

    "zipf" draws id `r - 1` with probability proportional to `1 / r`, as
    word frequencies in text (and ids sorted by frequency, as tokenizers
    number them); "uniform" draws every id equally often.
    """
    rng = np.random.default_rng(seed)
    if distribution == "uniform":
        return rng.integers(0, vocab, size=(n, tokens), dtype=np.int32)
    p = 1.0 / np.arange(1, vocab + 1, dtype=np.float64)
    p /= p.sum()
    # Inverse-CDF sampling: one searchsorted, fast even for V = 1M.
    cdf = np.cumsum(p)
    u = rng.random(n * tokens)
    ids = np.minimum(np.searchsorted(cdf, u), vocab - 1)
    return ids.astype(np.int32).reshape(n, tokens)


def dataset(args, vocab, n_batches=8, seed=0):
    """A repeating `tf.data.Dataset` of `n_batches` distinct batches.

    The batches are made once, in memory, and each dataset element is a
    whole batch: the input pipeline must not be what is timed.
    """
    n = n_batches * args.batch_size
    ids = token_ids(vocab, n, args.tokens, args.ids, seed)
    labels = np.random.default_rng(seed + 1).integers(0, args.classes, n)
    batches = (
        ids.reshape(n_batches, args.batch_size, args.tokens),
        labels.astype("int32").reshape(n_batches, args.batch_size),
    )
    return tf.data.Dataset.from_tensor_slices(batches).repeat().prefetch(2)


def unique_rows_per_batch(args, vocab, n_batches=8, seed=0):
    """Mean number of distinct ids in a batch of `dataset(args, vocab)`.

    The row-wise update costs what the batch touches: this many rows.
    """
    n = n_batches * args.batch_size
    ids = token_ids(vocab, n, args.tokens, args.ids, seed)
    batches = ids.reshape(n_batches, -1)
    return float(np.mean([len(np.unique(b)) for b in batches]))


# --------------------------------------------------------------------------
# Models


@keras.saving.register_keras_serializable(package="vtrain_benchmarks")
def mean_pooled(embedding, tokens, classes):
    """`(inputs, logits)`: ids -> embedding -> mean over tokens -> Dense."""
    ids = keras.Input((tokens,), dtype="int32", name="ids")
    pooled = keras.layers.GlobalAveragePooling1D()(embedding(ids))
    logits = keras.layers.Dense(classes, name="logits")(pooled)
    return ids, logits


def plain_keras(vocab, args):
    """`keras.layers.Embedding` + Adam + compiled loss: the reference."""
    ids, logits = mean_pooled(keras.layers.Embedding(vocab, args.dim), args.tokens, args.classes)
    model = keras.Model(ids, logits)
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=args.jit_compile or "auto",
    )
    return model


def vtrain_variational(vocab, args, examples=100_000, kl_refresh_steps=1):
    """`VariationalModel` + `VariationalEmbedding` + `LazyAdam`: vtrain's stack.

    `weight_decay` is the ELBO's 1 / (training examples); its value does
    not change the cost of a step. `kl_refresh_steps` is the layer's: 1
    (exact: every row's KL gradient at every step) or k > 1 (the fast mode).
    """
    ids, logits = mean_pooled(
        vtrain.layers.VariationalEmbedding(vocab, args.dim, kl_refresh_steps=kl_refresh_steps),
        args.tokens,
        args.classes,
    )
    model = vtrain.VariationalModel(ids, logits, weight_decay=1.0 / examples)
    model.compile(optimizer=LazyAdam(LEARNING_RATE), jit_compile=args.jit_compile or "auto")
    return model


def fast_builders(refresh_steps):
    """`{"fast K": build}` for each K: `vtrain_variational` with `kl_refresh_steps=K`."""
    return {
        f"fast{k}": (lambda vocab, args, k=k: vtrain_variational(vocab, args, kl_refresh_steps=k))
        for k in refresh_steps
    }


def vtrain_gather(vocab, args):
    """`VariationalModel` with a plain `GatherEmbedding` (its KL is 0)."""
    ids, logits = mean_pooled(
        vtrain.layers.GatherEmbedding(vocab, args.dim), args.tokens, args.classes
    )
    model = vtrain.VariationalModel(ids, logits, weight_decay=1e-5)
    model.compile(optimizer=LazyAdam(LEARNING_RATE), jit_compile=args.jit_compile or "auto")
    return model


# --------------------------------------------------------------------------
# Timing


class StepTimer(keras.callbacks.Callback):
    """Records wall and process CPU time at the end of every training batch.

    CPU time (all threads of this process) is reported next to wall time:
    on a shared machine it moves less with other people's load, so it helps
    to tell a real difference from a noisy one.
    """

    def on_train_begin(self, logs=None):
        self.times, self.cpu_times = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())
        self.cpu_times.append(time.process_time())


def fit_step_seconds(model, data, warmup, steps, cpu=False):
    """Mean seconds per step over `steps` steps of `model.fit`, after `warmup`.

    One `fit` call of `warmup + steps` steps; the timer runs from the end of
    the last warm-up step to the end of the last step, so `fit`'s set-up and
    the warm-up are excluded, and Keras's per-step work (iterator, callbacks)
    is included, as in real training. With `cpu=True`, returns
    `(wall seconds, CPU seconds)` per step.
    """
    timer = StepTimer()
    warmup = max(warmup, 1)
    model.fit(
        data, epochs=1, steps_per_epoch=warmup + steps, callbacks=[timer], shuffle=False, verbose=0
    )
    wall = (timer.times[-1] - timer.times[warmup - 1]) / steps
    if not cpu:
        return wall
    return wall, (timer.cpu_times[-1] - timer.cpu_times[warmup - 1]) / steps


def alternate(runs, repeats, log=sys.stderr):
    """Calls every `runs[name]()` in turn, `repeats` rounds; returns all results.

    `runs` maps a configuration name to a zero-argument function returning
    one measurement. Round r runs A, B, C, ... in order, so a burst of load
    from another process hits every configuration about equally.
    """
    results = {name: [] for name in runs}
    for r in range(repeats):
        for name, run in runs.items():
            results[name].append(run())
        print(f"  round {r + 1}/{repeats} done (load {load_average()})", file=log, flush=True)
    return results


def median(values):
    return statistics.median(values)


def spread(values):
    """`min-max` of the runs, relative to the median, as `±x%`."""
    m = median(values)
    return f"{100 * (max(values) - min(values)) / 2 / m:.0f}%" if m else "-"


def print_table(headers, rows):
    """A Markdown table (so it can be pasted into docs/performance.md)."""
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    fmt = lambda row: "| " + " | ".join(c.rjust(w) for c, w in zip(row, widths)) + " |"
    print(fmt(cells[0]))
    print("|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|")
    for row in cells[1:]:
        print(fmt(row))
    sys.stdout.flush()


def verdict(what, value, target, higher_is_better=False, timed=True):
    """Prints and returns `PASS`/`MISS` of `value` against `target`.

    For a timing (`timed`), says so when the load average exceeded the core
    count at the start or now.
    """
    ok = value >= target if higher_is_better else value <= target
    sign = ">=" if higher_is_better else "<="
    result = "PASS" if ok else "MISS"
    _LOADS.append(os.getloadavg()[0])
    busy = ""
    if timed and max(_LOADS) > os.cpu_count():
        # Other processes held the cores: wall times measured the scheduler.
        busy = (
            f" (machine busy: load average up to {max(_LOADS):.1f} on "
            f"{os.cpu_count()} cores; wall times are unreliable, compare the "
            "CPU times or rerun)"
        )
    print(f"{what}: {value:.3f} (target {sign} {target}) {result}{busy}")
    return result


def finish():
    print(f"load average at end: {load_average()}")
    sys.stdout.flush()


def parser(description):
    return argparse.ArgumentParser(
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
