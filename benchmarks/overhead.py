"""Framework overhead: `vtrain.Model` against Keras's compiled loss, same network.

Run from the repository root (about 1 minute on 2 cores):

    python -m benchmarks.overhead

Both models are the same functional network (ids -> `tf.gather` embedding
-> mean over tokens -> Dense to 64 classes), start from the same weights,
read the same batches and use the same optimizer (`LazyAdam` by default):

- `keras`: `keras.Model(ids, logits)` +
  `compile(loss=SparseCategoricalCrossentropy(from_logits=True))`;
- `vtrain`: `vtrain.Model(ids, logits)` whose `compute_losses` returns one
  term, the same cross-entropy; its `fit` adds the epoch callback.

A run is one timed `model.fit(epochs=--epochs, steps_per_epoch=--steps)`
after an untimed warm-up `fit` of `--warmup` steps. Two figures per run:
`fit` examples/s (the whole call's wall time, set-up and epoch callbacks
included: what a user gets) and steady examples/s (from the end of the first
step to the end of the last, per step). The embedding is small (V=10k) so
that the step is cheap and any per-step overhead shows. Target (issue 5):
vtrain >= 0.97 x keras, examples per second of the whole `fit`.
"""

import time

import keras
from keras import ops

import vtrain
from benchmarks import common
from vtrain.optimizers import LazyAdam


@keras.saving.register_keras_serializable(package="vtrain_benchmarks")
class CrossEntropyModel(vtrain.Model):
    """`vtrain.Model` with a single term: mean sparse cross-entropy of logits."""

    def compute_losses(self, data, training):
        x, y = data
        logits = self(x, training=training)
        return {
            "cross_entropy": ops.mean(
                ops.sparse_categorical_crossentropy(y, logits, from_logits=True)
            )
        }


def optimizer(name):
    if name == "lazy_adam":
        return LazyAdam(common.LEARNING_RATE)
    return keras.optimizers.Adam(common.LEARNING_RATE)


def build(kind, args, weights=None):
    ids, logits = common.mean_pooled(
        vtrain.layers.GatherEmbedding(args.vocab, args.dim), args.tokens, args.classes
    )
    if kind == "vtrain":
        model = CrossEntropyModel(ids, logits)
        model.compile(optimizer=optimizer(args.optimizer), jit_compile=args.jit_compile or "auto")
    else:
        model = keras.Model(ids, logits)
        model.compile(
            optimizer=optimizer(args.optimizer),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=args.jit_compile or "auto",
        )
    if weights is not None:
        # Trainable weights only: vtrain.Model also holds its `epoch`.
        for variable, value in zip(model.trainable_variables, weights, strict=True):
            variable.assign(value)
    return model


def timed_fit(model, data, args):
    """One timed `fit`: examples/s of the whole call and steady, wall and CPU.

    Returns `{"fit": .., "steady": .., "fit_cpu": .., "steady_cpu": ..}`,
    each in examples per second (of wall time, or of process CPU time).
    """
    model.fit(data, epochs=1, steps_per_epoch=max(args.warmup, 1), shuffle=False, verbose=0)
    timer = common.StepTimer()
    start, start_cpu = time.perf_counter(), time.process_time()
    model.fit(
        data,
        epochs=args.epochs,
        steps_per_epoch=args.steps,
        callbacks=[timer],
        shuffle=False,
        verbose=0,
    )
    wall, wall_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    steps = args.epochs * args.steps
    examples = steps * args.batch_size
    per_step = args.batch_size * (steps - 1)
    return {
        "fit": examples / wall,
        "steady": per_step / (timer.times[-1] - timer.times[0]),
        "fit_cpu": examples / wall_cpu,
        "steady_cpu": per_step / (timer.cpu_times[-1] - timer.cpu_times[0]),
    }


def main():
    parser = common.add_common_flags(
        common.parser(__doc__.splitlines()[0]), repeats=7, steps=100, warmup=5
    )
    parser.add_argument("--vocab", type=int, default=10_000)
    parser.add_argument(
        "--epochs", type=int, default=2, help="epochs per timed fit (--steps steps each)"
    )
    parser.add_argument("--optimizer", choices=("lazy_adam", "adam"), default="lazy_adam")
    args = parser.parse_args()
    common.print_header("overhead: vtrain.Model against compile(loss=...)", args)

    data = common.dataset(args, args.vocab)
    keras_model = build("keras", args)
    models = {
        "keras": keras_model,
        "vtrain": build(
            "vtrain", args, weights=[v.numpy() for v in keras_model.trainable_variables]
        ),
    }
    for model in models.values():  # trace once, outside every run
        model.fit(data, epochs=1, steps_per_epoch=2, shuffle=False, verbose=0)
    results = common.alternate(
        {kind: (lambda m=model: timed_fit(m, data, args)) for kind, model in models.items()},
        args.repeats,
    )
    med = {
        kind: {key: common.median([r[key] for r in runs]) for key in runs[0]}
        for kind, runs in results.items()
    }

    print(
        f"\nmedian of {args.repeats} alternating runs, examples per second of wall "
        "time (± half the min-max range, relative) and of process CPU time:"
    )

    def cell(kind, key):
        spread = common.spread([r[key] for r in results[kind]])
        return f"{med[kind][key]:,.0f} ±{spread}"

    common.print_table(
        [
            "model",
            "fit examples/s",
            "steady examples/s",
            "steady ms/step",
            "fit examples/CPU-s",
            "steady examples/CPU-s",
        ],
        [
            [
                kind,
                cell(kind, "fit"),
                cell(kind, "steady"),
                f"{1e3 * args.batch_size / med[kind]['steady']:.2f}",
                f"{med[kind]['fit_cpu']:,.0f}",
                f"{med[kind]['steady_cpu']:,.0f}",
            ]
            for kind in models
        ],
    )
    print()
    ratio = lambda key: med["vtrain"][key] / med["keras"][key]
    common.verdict("vtrain / keras, fit examples/s", ratio("fit"), 0.97, higher_is_better=True)
    for key in ("steady", "fit_cpu", "steady_cpu"):
        common.verdict(
            f"vtrain / keras, {key} (for information)", ratio(key), 0.97, higher_is_better=True
        )
    common.finish()


if __name__ == "__main__":
    main()
