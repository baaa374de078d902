"""The vocabulary report of a finished run, as a command.

    python -m vtrain.tagging.compress --workdir=WORKDIR [--baseline_workdir=WORKDIR/baseline]

writes `WORKDIR/vocabulary.json` (curves and summary), `vocabulary.png`,
`vocabulary.md` and `WORKDIR/pruned/` (the model at its own threshold);
with `--results_page=docs/results.md`, also that page and its plot. See
`vtrain.tagging.vocabulary_report.compress_run` for what is measured.
"""

import sys

from absl import app, flags

from vtrain.tagging import results_page, train, vocabulary_report

FLAGS = flags.FLAGS


def define_flags():
    """The command's flags (defined only when it runs: the launcher has a --workdir too)."""
    flags.DEFINE_string("workdir", None, "Folder of a finished vtrain.main run.")
    flags.DEFINE_string(
        "baseline_workdir",
        "",
        "Finished non-variational run on the same data (e.g. WORKDIR/baseline of "
        "vtrain.main --baseline=...): the frequency and TF-IDF curves and the "
        "reference F1 are its.",
    )
    flags.DEFINE_integer("num_sizes", 100, "Log-spaced vocabulary sizes per ranking.")
    flags.DEFINE_enum("split", "test", ["test", "validation"], "Split the curves are measured on.")
    flags.DEFINE_string(
        "results_page",
        "",
        "If set (e.g. docs/results.md), also write a results page there, with the plot next to it.",
    )


def main(argv):
    """`python -m vtrain.tagging.compress --workdir=DIR`: see `train.compress_workdir`."""
    del argv
    report = train.compress_workdir(
        FLAGS.workdir,
        num_sizes=FLAGS.num_sizes,
        split=FLAGS.split,
        baseline_workdir=FLAGS.baseline_workdir or None,
    )
    print(vocabulary_report.markdown_table(report))
    if FLAGS.results_page:
        results_page.write_results_page(
            report,
            FLAGS.results_page,
            command=" ".join(["python -m vtrain.tagging.compress"] + sys.argv[1:]),
        )


if __name__ == "__main__":
    define_flags()
    flags.mark_flag_as_required("workdir")
    app.run(main)
