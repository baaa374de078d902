"""Step time against vocabulary size: vtrain's sparse stack next to plain Keras.

Run from the repository root (about 5 minutes on 2 cores):

    python -m benchmarks.vocab_scaling

Configurations, at every V in `--vocabs` (D=128, batch 256 x 50 ids,
mean-pooled, Dense to 64 classes, cross-entropy):

- `vtrain`: `VariationalModel` + `VariationalEmbedding` + `LazyAdam`
  (the exact KL: every row's KL gradient at every step);
- `fastK`: the same with `VariationalEmbedding(kl_refresh_steps=K)` for
  each K of `--kl-refresh-steps` (default 8 and 32): the batch's rows and
  a rotating 1/K of the others get their KL recomputed per step, the
  rest reuse theirs;
- `gather`: the same without the variational part (`VariationalModel` with
  a plain `tf.gather` embedding, so no noise, no `log_alpha`, KL = 0), to
  show what the `V x 1` `log_alpha` and its KL cost at large V;
- `adam`: `vtrain`'s model compiled as the README does,
  `compile(optimizer="adam")`: Keras's Adam turns the embedding's sparse
  gradient into a dense update (vtrain warns about it, once); the ratio
  `adam / vtrain` is what `LazyAdam` saves;
- `keras`: `keras.layers.Embedding` + `keras.optimizers.Adam` +
  `compile(loss=...)`, the plain-Keras reference.

Each run is one `model.fit` call: `--warmup` untimed steps, then `--steps`
timed steps (`--keras-steps` for plain Keras and `adam`, whose 1M step
takes seconds);
the runs alternate over all configurations, `--repeats` rounds, and the
table gives the median ms per step. Targets (issue 15): at every V,
vtrain / gather <= 1.15, printed for `vtrain` and every `fastK` (the ratios
of medians of the same alternating rounds). Also printed, for
information: step(largest V) / step(smallest V) of each configuration.
"""

import warnings

import vtrain
from benchmarks import common


def vtrain_adam(vocab, args, examples=100_000):
    """`common.vtrain_variational` compiled with the README's `optimizer="adam"`."""
    ids, logits = common.mean_pooled(
        vtrain.layers.VariationalEmbedding(vocab, args.dim), args.tokens, args.classes
    )
    model = vtrain.VariationalModel(ids, logits, weight_decay=1.0 / examples)
    model.compile(optimizer="adam", jit_compile=args.jit_compile or "auto")
    return model


def main():
    parser = common.add_common_flags(common.parser(__doc__.splitlines()[0]))
    parser.add_argument("--vocabs", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument(
        "--keras-steps",
        type=int,
        default=5,
        help="timed steps per run for plain Keras (about 2 s each at V=1M)",
    )
    parser.add_argument("--keras-warmup", type=int, default=1)
    parser.add_argument("--no-keras", action="store_true", help="skip plain Keras")
    parser.add_argument("--no-gather", action="store_true", help="skip `gather`")
    common.add_kl_refresh_flag(parser)
    parser.add_argument(
        "--no-adam", action="store_true", help='skip `adam` (compile(optimizer="adam"))'
    )
    args = parser.parse_args()
    # `adam` densifies on purpose: that is what it measures.
    warnings.simplefilter("ignore", vtrain.optimizers.DensifiedGradientWarning)
    common.print_header("vocab_scaling: ms per training step against V", args)

    kinds = {"vtrain": common.vtrain_variational}
    kinds.update(common.fast_builders(args.kl_refresh_steps))
    if not args.no_gather:
        kinds["gather"] = common.vtrain_gather
    if not args.no_adam:
        kinds["adam"] = vtrain_adam
    if not args.no_keras:
        kinds["keras"] = common.plain_keras

    runs = {}
    for vocab in args.vocabs:
        data = common.dataset(args, vocab)
        for kind, build in kinds.items():
            model = build(vocab, args)
            # Trace (and build the optimizer) once, outside every run.
            common.fit_step_seconds(model, data, warmup=1, steps=1)
            warmup, steps = (
                (args.keras_warmup, args.keras_steps)
                if kind in ("keras", "adam")
                else (args.warmup, args.steps)
            )
            runs[(kind, vocab)] = lambda m=model, d=data, w=warmup, s=steps: (
                common.fit_step_seconds(m, d, w, s, cpu=True)
            )
    results = common.alternate(runs, args.repeats)
    ms = {key: 1e3 * common.median([r[0] for r in v]) for key, v in results.items()}
    cpu = {key: 1e3 * common.median([r[1] for r in v]) for key, v in results.items()}

    small, large = min(args.vocabs), max(args.vocabs)
    headers = ["V", "rows/batch"]
    for kind in kinds:
        headers += [f"{kind} ms/step", f"{kind} CPU ms"]
    rows = []
    for vocab in args.vocabs:
        row = [f"{vocab:,}", f"{common.unique_rows_per_batch(args, vocab):,.0f}"]
        for kind in kinds:
            walls = [r[0] for r in results[(kind, vocab)]]
            row += [f"{ms[(kind, vocab)]:.1f} ±{common.spread(walls)}", f"{cpu[(kind, vocab)]:.1f}"]
        rows.append(row)
    ratio_row = [f"{large:,} / {small:,}", ""]
    for kind in kinds:
        ratio_row += [
            f"{ms[(kind, large)] / ms[(kind, small)]:.2f}x",
            f"{cpu[(kind, large)] / cpu[(kind, small)]:.2f}x",
        ]
    rows.append(ratio_row)
    print(
        f"\nmedian of {args.repeats} alternating runs: wall ms per step (± half "
        "the min-max range, relative) and CPU ms per step (all threads); "
        "rows/batch = distinct ids in a batch of "
        f"{args.batch_size * args.tokens:,} ({args.ids}):"
    )
    common.print_table(headers, rows)
    if "gather" in kinds:
        print(
            "\nvtrain - gather: cost of the variational layer "
            "(noise, log_alpha lookup, KL over all V rows, log_alpha update):"
        )
        for vocab in args.vocabs:
            print(
                f"  V={vocab:,}: {ms[('vtrain', vocab)] - ms[('gather', vocab)]:+.1f} ms "
                f"wall, {cpu[('vtrain', vocab)] - cpu[('gather', vocab)]:+.1f} ms CPU"
            )
    if "adam" in kinds:
        print('\nadam / vtrain: compile(optimizer="adam") against LazyAdam, same model:')
        for vocab in args.vocabs:
            print(
                f"  V={vocab:,}: {ms[('adam', vocab)] / ms[('vtrain', vocab)]:.1f}x wall, "
                f"{cpu[('adam', vocab)] / cpu[('vtrain', vocab)]:.1f}x CPU"
            )
    print()
    if "adam" in kinds:
        print(
            f'compile(optimizer="adam") / LazyAdam at V={large:,}: '
            f"{ms[('adam', large)] / ms[('vtrain', large)]:.1f}x (for information)"
        )
    print(
        f"vtrain step(V={large:,}) / step(V={small:,}): "
        f"{ms[('vtrain', large)] / ms[('vtrain', small)]:.3f} wall, "
        f"{cpu[('vtrain', large)] / cpu[('vtrain', small)]:.3f} CPU (for information)"
    )
    if "gather" in kinds:
        modes = [kind for kind in kinds if kind == "vtrain" or kind.startswith("fast")]
        print(
            "\nvariational / gather at the same V (target <= 1.15; "
            + ", ".join(
                "vtrain: exact KL" if kind == "vtrain" else f"{kind}: kl_refresh_steps={kind[4:]}"
                for kind in modes
            )
            + "):"
        )
        for vocab in args.vocabs:
            for kind in modes:
                common.verdict(
                    f"{kind} / gather, V={vocab:,}",
                    ms[(kind, vocab)] / ms[("gather", vocab)],
                    1.15,
                )
                common.verdict(
                    "  same, in CPU time (for information)",
                    cpu[(kind, vocab)] / cpu[("gather", vocab)],
                    1.15,
                )
    common.finish()


if __name__ == "__main__":
    main()
