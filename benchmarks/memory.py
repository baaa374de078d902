"""Peak memory (RSS) of training at V=1M against parameters + optimizer slots + a batch.

Run from the repository root (about 3 minutes on 2 cores):

    python -m benchmarks.memory

Every measurement is a fresh subprocess (peak RSS only grows within a
process), which imports TensorFlow, Keras and vtrain, records its RSS
("baseline": nothing built yet), builds the model, builds the optimizer,
runs `--steps` training steps with `fit`, and reports
`resource.getrusage(RUSAGE_SELF).ru_maxrss` after each stage. The figure
that matters is `peak - baseline`, against the bytes that training
needs: every model variable, every optimizer variable, one batch.

Configurations are `kind:V` (`--configs`), with the shapes of the other
scripts (D=128, batch 256 x 50, 64 classes):

- `vtrain`: `VariationalModel` + `VariationalEmbedding` + `LazyAdam`;
- `gather`: `VariationalModel` + a plain `tf.gather` embedding + `LazyAdam`
  (no `log_alpha`), e.g. `--configs gather:1000000`;
- `keras`: `keras.layers.Embedding` + `keras.optimizers.Adam`, compiled loss;
- `vtrain:10000` shows the fixed cost (tracing, graph, TF runtime), which a
  1M-row table makes small in relative terms.

Target (issue 5): for `vtrain` at V=1M, (peak - baseline) <= 1.25 x needed.
"""

import argparse
import json
import os
import subprocess
import sys

from benchmarks import common

CHILD = "--child"


def rss_mb():
    """`(peak RSS, current RSS)` of this process, in MB."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
    with open("/proc/self/status") as f:
        current = next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
    return peak, current / 1024


def child(args):
    """Runs in the subprocess: one configuration, prints one JSON line."""
    import numpy as np

    stages = {"baseline": rss_mb()}
    kind, vocab = args.config.split(":")
    vocab = int(vocab)
    build = {
        "vtrain": common.vtrain_variational,
        "gather": common.vtrain_gather,
        "keras": common.plain_keras,
    }[kind]
    model = build(vocab, args)
    stages["model built"] = rss_mb()
    model.optimizer.build(model.trainable_variables)
    stages["optimizer built"] = rss_mb()
    data = common.dataset(args, vocab, n_batches=2)
    model.fit(data, epochs=1, steps_per_epoch=args.steps, shuffle=False, verbose=0)
    stages["trained"] = rss_mb()

    def nbytes(variables):
        return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)

    inner = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    batch = args.batch_size * args.tokens * 4 + args.batch_size * 4
    print(
        json.dumps(
            {
                "stages": stages,
                "model_mb": nbytes(model.variables) / 2**20,
                "optimizer_mb": nbytes(inner.variables) / 2**20,
                "batch_mb": batch / 2**20,
            }
        )
    )


def measure(config, args):
    command = [
        sys.executable,
        "-m",
        "benchmarks.memory",
        CHILD,
        "--config",
        config,
        "--steps",
        str(args.steps),
        "--ids",
        args.ids,
        "--dim",
        str(args.dim),
        "--batch-size",
        str(args.batch_size),
        "--tokens",
        str(args.tokens),
        "--classes",
        str(args.classes),
    ]
    if args.jit_compile:
        command.append("--jit-compile")
    run = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    )
    if run.returncode != 0:
        raise RuntimeError(f"{config} failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main():
    parser = common.add_common_flags(
        common.parser(__doc__.splitlines()[0]), repeats=5, steps=3
    )  # --steps: training steps before the peak is read; --warmup is unused
    parser.add_argument(
        "--configs", nargs="+", default=["vtrain:1000000", "keras:1000000", "vtrain:10000"]
    )
    # Internal: run one configuration in this (fresh) process.
    parser.add_argument(CHILD, action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    common.print_header("memory: peak RSS against parameters + slots + batch", args)

    results = common.alternate(
        {config: (lambda c=config: measure(c, args)) for config in args.configs},
        args.repeats,
    )
    print(
        f"\nmedian of {args.repeats} alternating runs (one fresh process each), MB "
        "(peak = ru_maxrss; current RSS in brackets):"
    )
    rows = []
    ratios = {}
    for config, runs in results.items():
        med = lambda f: common.median([f(r) for r in runs])  # noqa: B023  (used in this iteration)
        baseline = med(lambda r: r["stages"]["baseline"][0])
        built = med(lambda r: r["stages"]["optimizer built"][0])
        peak = med(lambda r: r["stages"]["trained"][0])
        current = med(lambda r: r["stages"]["trained"][1])
        needed = med(lambda r: r["model_mb"] + r["optimizer_mb"] + r["batch_mb"])
        params = med(lambda r: r["model_mb"])
        ratios[config] = (peak - baseline) / needed
        growth = [r["stages"]["trained"][0] - r["stages"]["baseline"][0] for r in runs]
        rows.append(
            [
                config,
                f"{baseline:,.0f}",
                f"{params:,.0f}",
                f"{needed:,.0f}",
                f"{built - baseline:,.0f}",
                f"{peak - baseline:,.0f} [{current - baseline:,.0f}]",
                f"{ratios[config]:.2f}x ±{common.spread(growth)}",
            ]
        )
    common.print_table(
        [
            "config",
            "baseline",
            "params",
            "needed",
            "peak-baseline after build",
            "peak-baseline after fit [current]",
            "(peak-baseline)/needed",
        ],
        rows,
    )
    print(
        "\nneeded = model variables + optimizer variables + one batch; "
        "baseline = after importing TF, Keras and vtrain"
    )
    print()
    # The target is for vtrain's stack at the largest vocabulary measured.
    vtrain_configs = [c for c in args.configs if c.startswith("vtrain:")]
    target = max(vtrain_configs, key=lambda c: int(c.split(":")[1]), default=None)
    if target is not None:
        common.verdict(f"{target}: (peak - baseline) / needed", ratios[target], 1.25, timed=False)
    common.finish()


if __name__ == "__main__":
    main()
