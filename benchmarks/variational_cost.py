"""What the variational embedding costs over a plain gather embedding, at V=10k.

Run from the repository root (about 1 minute on 2 cores):

    python -m benchmarks.variational_cost

Both are `VariationalModel` (ids -> embedding -> mean over tokens -> Dense
to 64 classes) trained with `LazyAdam`; only the embedding layer differs:

- `gather`: a plain `tf.gather` embedding (sparse gradient, no noise, KL 0);
- `variational`: `VariationalEmbedding` (per-token noise `mu * (1 + sqrt(alpha) * eps)`,
  a `log_alpha` lookup, the KL of all V rows, the `V x 1` `log_alpha` update);
- `fastK`: the same with `kl_refresh_steps=K`, for each K of
  `--kl-refresh-steps` (default 8 and 32).

Each run is one `model.fit` call: `--warmup` untimed steps then `--steps`
timed steps; runs alternate, `--repeats` rounds; medians in ms per step.
Target (issues 5 and 15): variational <= 1.15 x gather, printed for both
modes.
"""

from benchmarks import common


def main():
    parser = common.add_common_flags(
        common.parser(__doc__.splitlines()[0]), repeats=7, steps=50, warmup=3
    )
    parser.add_argument("--vocab", type=int, default=10_000)
    common.add_kl_refresh_flag(parser)
    args = parser.parse_args()
    common.print_header("variational_cost: VariationalEmbedding against gather", args)

    data = common.dataset(args, args.vocab)
    models = {
        "gather": common.vtrain_gather(args.vocab, args),
        "variational": common.vtrain_variational(args.vocab, args),
        **{
            kind: build(args.vocab, args)
            for kind, build in common.fast_builders(args.kl_refresh_steps).items()
        },
    }
    for model in models.values():
        common.fit_step_seconds(model, data, warmup=1, steps=1)  # trace once

    def run(model):
        return common.fit_step_seconds(model, data, args.warmup, args.steps, cpu=True)

    results = common.alternate(
        {kind: (lambda m=model: run(m)) for kind, model in models.items()}, args.repeats
    )
    ms = {k: 1e3 * common.median([r[0] for r in v]) for k, v in results.items()}
    cpu = {k: 1e3 * common.median([r[1] for r in v]) for k, v in results.items()}
    print(
        f"\nmedian of {args.repeats} alternating runs, V={args.vocab:,}: wall ms per "
        "step (± half the min-max range, relative), CPU ms per step (all threads):"
    )
    common.print_table(
        ["embedding", "ms/step", "CPU ms/step", "examples/s"],
        [
            [
                kind,
                f"{ms[kind]:.2f} ±{common.spread([r[0] for r in results[kind]])}",
                f"{cpu[kind]:.2f}",
                f"{1e3 * args.batch_size / ms[kind]:,.0f}",
            ]
            for kind in models
        ],
    )
    print()
    common.verdict("variational / gather, step time", ms["variational"] / ms["gather"], 1.15)
    common.verdict("same, in CPU time (for information)", cpu["variational"] / cpu["gather"], 1.15)
    for k in args.kl_refresh_steps:
        common.verdict(
            f"fast{k} (kl_refresh_steps={k}) / gather, step time",
            ms[f"fast{k}"] / ms["gather"],
            1.15,
        )
        common.verdict("same, in CPU time (for information)", cpu[f"fast{k}"] / cpu["gather"], 1.15)
    common.finish()


if __name__ == "__main__":
    main()
