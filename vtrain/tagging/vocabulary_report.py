"""A tag model's vocabulary report: curves, table, plot and pruned model.

`compress_run` ranks the words of a trained tag model (a word classifier,
or the iTag model: anything with `recommend` and one word embedding) three ways,
measures F1@k and P@1 at log-spaced vocabulary sizes on a split
(`vtrain.vocabulary.sweep`), summarises the curves, exports the model
pruned to its own threshold, and writes `vocabulary.json`,
`vocabulary.md` and `vocabulary.png` into the run's folder.
"""

import json
import os

import numpy as np
from keras import ops

from vtrain import io, vocabulary
from vtrain.layers.variational_embedding import VariationalEmbedding
from vtrain.tagging import evaluate
from vtrain.vocabulary.rankings import FIRST_WORD_ID, OOV_ID, PADDING_ID

REPORT_FILE = "vocabulary.json"


def ranking_measure(k=3):
    """`measure(model, batches)` for `vtrain.vocabulary.sweep`: F1@k and P@1.

    Example:
    >>> sorted(ranking_measure(3).__name__.split("_"))
    ['f1', 'measure']
    """
    ks = (1,) if k == 1 else (1, k)

    def measure_f1(model, batches):
        results = evaluate.ranking_results(model, batches, ks=ks)
        return {f"f1_at_{k}": results[f"f1@{k}"], "precision_at_1": results["precision@1"]}

    return measure_f1


def compress_run(model, data, workdir, num_sizes=100, split="test", k=3, baseline=None):
    """Sweeps the rankings of a trained model and writes the reports into `workdir`.

    Ranks the words (variational if the model has a `VariationalEmbedding`,
    frequency, TF-IDF on the training split), measures each ranking at
    about `num_sizes` log-spaced vocabulary sizes on `split`, and writes:

    - `vocabulary.json`: curves, summary, export sizes, the words each
      ranking keeps first and drops first;
    - `vocabulary.png`: F1@k against the vocabulary size (log x);
    - `vocabulary.md`: the table (`markdown_table`);
    - `pruned/`: the model with the words its own threshold keeps
      (`export_pruned`), and the max score difference of the reloaded
      pruned model against the masked one on `split`.

    Without `baseline`, every ranking is applied to `model` and the drops
    are measured from its own full-vocabulary F1. With `baseline` (the
    report of a non-variational run on the same data, e.g.
    `read_report(WORKDIR/baseline)`), the frequency and TF-IDF curves are
    the baseline's (its model, its masks) and the drops, the threshold's
    included, are measured from the baseline's full-vocabulary F1: the
    comparison the reference work makes.

    Args:
        model: a trained tag model with `recommend(token_ids, k)` and one
            word embedding (a word classifier, `ITag`).
        data: its `vtrain.tagging.data.pipeline.TagData`.
        workdir: output folder.
        num_sizes: log-spaced sizes per ranking (`vocabulary.curves.log_spaced_sizes`).
        split: "test" or "validation".
        k: the F1 cut-off.
        baseline: None, or a report of `compress_run` measured with the
            same `num_sizes`, `split` and `k` on the same vocabulary.

    Returns:
        The dict written to `vocabulary.json`.
    """
    layer = vocabulary.embedding_layer(model)
    # Read the split once: it is evaluated once per ranking and size, then
    # at the threshold and against the exported model.
    dataset = [(np.asarray(x), np.asarray(y)) for x, y in getattr(data, split)]
    num_words = data.vocabulary_size - FIRST_WORD_ID
    sizes = vocabulary.curves.log_spaced_sizes(num_words, num=num_sizes)
    if baseline is not None:
        _check_baseline(baseline, sizes, split, k)  # before any evaluation
    rankings = {}
    if isinstance(layer, VariationalEmbedding):
        rankings["variational"] = vocabulary.variational_ranking(layer)
    if baseline is None:
        rankings["frequency"] = vocabulary.frequency_ranking(data.vocabulary)
        rankings["tfidf"] = vocabulary.tfidf_ranking(data.train, data.vocabulary_size)
    full = evaluate.ranking_results(model, dataset, ks=(1, k))
    curve_by_method = {
        method: vocabulary.sweep(model, dataset, ranking, sizes, measure=ranking_measure(k))
        for method, ranking in rankings.items()
    }
    first = {
        method: [data.vocabulary[i] for i in ranking[:30]] for method, ranking in rankings.items()
    }
    last = {
        method: [data.vocabulary[i] for i in ranking[-30:][::-1]]
        for method, ranking in rankings.items()
    }
    reference = full[f"f1@{k}"]
    if baseline is not None:
        for method in ("frequency", "tfidf"):
            curve_by_method[method] = baseline["curves"][method]
            first[method] = baseline["kept_first"][method]
            last[method] = baseline["dropped_first"][method]
        reference = baseline["full_vocabulary"][f"f1_at_{k}"]
    summary = vocabulary.summarise(curve_by_method, f"f1_at_{k}", reference=reference)

    keep_ids = np.arange(FIRST_WORD_ID, data.vocabulary_size)
    if isinstance(layer, VariationalEmbedding):
        keep = ops.convert_to_numpy(layer.keep_mask())
        keep_ids = keep_ids[keep[FIRST_WORD_ID:]]
    pruned_dir = os.path.join(workdir, "pruned")
    export = vocabulary.export_pruned(model, data.vectorizer, keep_ids, pruned_dir)
    with vocabulary.mask_embedding(model, keep_ids):
        threshold = evaluate.ranking_results(model, dataset, ks=(1, k))
    export.update(
        {
            "kept_words": int(len(keep_ids)),
            "num_words": int(num_words),
            f"{split}_f1_at_{k}": threshold[f"f1@{k}"],
            "max_abs_score_difference": _export_difference(model, keep_ids, pruned_dir, dataset),
        }
    )

    report = {
        "workdir": os.path.abspath(workdir),
        "split": split,
        "k": k,
        "num_sizes": int(num_sizes),
        "full_vocabulary": {f"f1_at_{k}": full[f"f1@{k}"], "precision_at_1": full["precision@1"]},
        "baseline": None
        if baseline is None
        else {"workdir": baseline["workdir"], "full_vocabulary": baseline["full_vocabulary"]},
        "curves": curve_by_method,
        "summary": summary,
        "pruned": export,
        "kept_first": first,
        "dropped_first": last,
    }
    io.atomic_write_json(os.path.join(workdir, REPORT_FILE), report)
    io.atomic_write_text(os.path.join(workdir, "vocabulary.md"), markdown_table(report))
    plot_curves(report, os.path.join(workdir, "vocabulary.png"))
    return report


def read_report(workdir):
    """The `vocabulary.json` report that `compress_run` wrote into `workdir`.

    Raises:
        FileNotFoundError: `workdir` has no report yet.
    """
    path = os.path.join(workdir, REPORT_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} is missing; expected the report of a finished classifier "
            "run. Write it with `python -m vtrain.tagging.compress --workdir="
            f"{workdir}` (or train the run with `python -m vtrain.main`)."
        )
    with open(path) as f:
        return json.load(f)


def _check_baseline(baseline, sizes, split, k):
    """Raises unless `baseline` was measured on the same sizes, split and k."""
    expected = {"split": split, "k": k}
    for key, value in expected.items():
        if baseline.get(key) != value:
            raise ValueError(
                f"The baseline report ({baseline.get('workdir')}) has {key}="
                f"{baseline.get(key)!r}; expected {value!r}, as in this run. "
                f"Re-run vtrain.tagging.compress on the baseline with --{key}={value}."
            )
    missing = [m for m in ("frequency", "tfidf") if m not in baseline.get("curves", {})]
    if missing:
        raise ValueError(
            f"The baseline report ({baseline.get('workdir')}) has no {missing} "
            "curves; expected a compress_run report of a full-vocabulary model."
        )
    measured = list(baseline["curves"]["frequency"]["sizes"])
    if measured != [int(size) for size in sizes]:
        raise ValueError(
            f"The baseline report ({baseline.get('workdir')}) was measured at "
            f"{len(measured)} sizes up to {max(measured)} words; expected the "
            f"{len(sizes)} sizes up to {int(sizes[-1])} of this run. Train both "
            "on the same data config and compress them with the same num_sizes."
        )


def _export_difference(model, keep_ids, pruned_dir, dataset):
    """Max |score| difference, pruned (reloaded) against masked, on `dataset`'s ids.

    The pruned model reads ids of the pruned vocabulary: the dataset's ids
    are remapped (kept word -> its new id, any other word -> "[UNK]"),
    which is what the new vectorizer does to the raw texts.
    """
    pruned, _ = vocabulary.load_pruned(pruned_dir)
    remap = np.full(vocabulary.embedding_layer(model).input_dim, OOV_ID, np.int64)
    remap[PADDING_ID] = PADDING_ID
    remap[np.sort(keep_ids)] = np.arange(len(keep_ids)) + FIRST_WORD_ID
    worst = 0.0
    with vocabulary.mask_embedding(model, keep_ids):
        for token_ids, _ in dataset:
            ids = np.asarray(token_ids)
            masked = ops.convert_to_numpy(model(ids, training=False))
            small = ops.convert_to_numpy(pruned(remap[ids], training=False))
            worst = max(worst, float(np.max(np.abs(masked - small))))
    return worst


def markdown_table(report):
    """The report of `compress_workdir` as a Markdown table.

    Example:
    >>> report = {"split": "test", "k": 3,
    ...     "full_vocabulary": {"f1_at_3": 0.5, "precision_at_1": 0.6},
    ...     "summary": {"full_size": 100, "methods": {"frequency": {
    ...         "auc": 0.7, "size_at_drop": {"0.5": 50, "1": 20, "3": None}}}},
    ...     "pruned": {"kept_words": 40, "num_words": 100, "test_f1_at_3": 0.49,
    ...                "model_bytes_before": 2000, "model_bytes_after": 900}}
    >>> print(markdown_table(report))  # doctest: +NORMALIZE_WHITESPACE
    F1@3 on the test split; vocabulary sizes in words (full: 100).
    <BLANKLINE>
    | method | AUC | words at -0.5 pt | words at -1 pt | words at -3 pt |
    |---|---|---|---|---|
    | frequency | 0.7000 | 50 | 20 | never |
    <BLANKLINE>
    Full vocabulary: F1@3 0.5000, P@1 0.6000.
    At the model's own threshold: 40 of 100 words kept (40.0%), F1@3 0.4900; \
pruned model file 2,000 -> 900 bytes.
    """
    k, split = report["k"], report["split"]
    summary = report["summary"]
    methods = summary["methods"]
    drops = list(next(iter(methods.values()))["size_at_drop"])
    lines = [
        f"F1@{k} on the {split} split; vocabulary sizes in words (full: {summary['full_size']:,}).",
        "",
        "| method | AUC | " + " | ".join(f"words at -{d} pt" for d in drops) + " |",
        "|---|---|" + "---|" * len(drops),
    ]
    for method, row in methods.items():
        cells = [
            "never" if row["size_at_drop"][d] is None else f"{row['size_at_drop'][d]:,}"
            for d in drops
        ]
        lines.append(f"| {method} | {row['auc']:.4f} | " + " | ".join(cells) + " |")
    full, pruned = report["full_vocabulary"], report["pruned"]
    lines += [
        "",
        f"Full vocabulary: F1@{k} {full[f'f1_at_{k}']:.4f}, P@1 {full['precision_at_1']:.4f}.",
    ]
    baseline = report.get("baseline")
    if baseline:
        lines.append(
            f"Baseline (frequency and tfidf rows; the drops are measured from "
            f"its full vocabulary): F1@{k} "
            f"{baseline['full_vocabulary'][f'f1_at_{k}']:.4f}, P@1 "
            f"{baseline['full_vocabulary']['precision_at_1']:.4f}."
        )
    lines.append(
        f"At the model's own threshold: {pruned['kept_words']:,} of "
        f"{pruned['num_words']:,} words kept "
        f"({100 * pruned['kept_words'] / pruned['num_words']:.1f}%), "
        f"F1@{k} {pruned[f'{split}_f1_at_{k}']:.4f}; pruned model file "
        f"{pruned['model_bytes_before']:,} -> {pruned['model_bytes_after']:,} bytes."
    )
    return "\n".join(lines) + "\n"


def reference_f1(report):
    """The F1@k the drops of `report` are measured from (baseline's if any).

    Example:
    >>> reference_f1({"k": 3, "full_vocabulary": {"f1_at_3": 0.5},
    ...               "baseline": {"full_vocabulary": {"f1_at_3": 0.4}}})
    0.4
    """
    k = report["k"]
    source = report.get("baseline") or report
    return source["full_vocabulary"][f"f1_at_{k}"]


def plot_curves(report, path):
    """F1@k against vocabulary size (log x), one line per method, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    from matplotlib import pyplot

    k = report["k"]
    figure, axes = pyplot.subplots(figsize=(7, 4.5))
    for method, curve in report["curves"].items():
        on_baseline = report.get("baseline") and method != "variational"
        axes.plot(
            curve["sizes"],
            curve[f"f1_at_{k}"],
            label=f"{method} (baseline model)" if on_baseline else method,
        )
    baseline = bool(report.get("baseline"))
    reference = reference_f1(report)
    axes.axhline(
        reference,
        color="grey",
        linestyle=":",
        label="baseline, full vocabulary" if baseline else "full vocabulary",
    )
    axes.axhline(reference - 0.01, color="grey", linestyle="--", linewidth=0.8, label="-1 point")
    axes.set_xscale("log")
    axes.set_xlabel("vocabulary size (words kept)")
    axes.set_ylabel(f"F1@{k} ({report['split']})")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    with io.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    pyplot.close(figure)
