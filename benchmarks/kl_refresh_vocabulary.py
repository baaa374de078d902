"""The fast KL mode side by side with the exact one on configs/vocabulary.py.

Run from the repository root (two training runs, about 4 minutes each on
2 quiet cores, about 7 on one busy core):

    python -m benchmarks.kl_refresh_vocabulary --workdir=runs/kl-refresh

It trains `configs/vocabulary.py` twice with the same seed: as is
(`model.kl_refresh_steps=1`, every word's KL gradient at every step) into
WORKDIR/exact, and with `--config.model.kl_refresh_steps=K` (`--refresh-steps`,
default 32) into WORKDIR/refresh_K, then compares the words each keeps (the
pruned vocabulary, `pruned/vocabulary.json`) and their test F1@3
(`results.json`). A finished run is reused, so the command can be rerun to
print the comparison only. Acceptance (issue 15): the fast run keeps >= 99%
of the exact run's kept words, and its test F1@3 is within 0.2 points.
"""

import json
import os
import subprocess
import sys

from benchmarks import common

SPECIAL = ("", "[UNK]")  # padding and unknown word, in every pruned vocabulary


def train(config, workdir, overrides):
    """Runs the launcher into `workdir` unless it already finished there."""
    if os.path.exists(os.path.join(workdir, "results.json")):
        print(f"reusing {workdir}", flush=True)
        return
    command = [sys.executable, "-m", "vtrain.main", f"--config={config}", f"--workdir={workdir}"]
    print("running: " + " ".join(command[1:] + overrides), flush=True)
    subprocess.run(command + overrides, check=True, stdout=subprocess.DEVNULL)


def kept_words(workdir):
    """The words the run's pruned model keeps, padding and [UNK] left out."""
    with open(os.path.join(workdir, "pruned", "vocabulary.json")) as f:
        vocabulary = json.load(f)["vectorizer"]["vocabulary"]
    return {word for word in vocabulary if word not in SPECIAL}


def f1_at_3(workdir):
    with open(os.path.join(workdir, "results.json")) as f:
        return json.load(f)["test"]["f1@3"]


def main():
    parser = common.parser(__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="folder of the two runs")
    parser.add_argument("--config", default="configs/vocabulary.py")
    parser.add_argument("--refresh-steps", type=int, default=32, help="the fast run's K")
    args = parser.parse_args()
    print("# kl_refresh_vocabulary: kl_refresh_steps=1 against kl_refresh_steps=K")
    print(f"machine: {common.machine_line()}")
    exact_dir = os.path.join(args.workdir, "exact")
    fast_dir = os.path.join(args.workdir, f"refresh_{args.refresh_steps}")
    train(args.config, exact_dir, [])
    train(args.config, fast_dir, [f"--config.model.kl_refresh_steps={args.refresh_steps}"])

    exact, fast = kept_words(exact_dir), kept_words(fast_dir)
    common_words = exact & fast
    overlap = len(common_words) / max(len(exact), 1)
    f1_exact, f1_fast = f1_at_3(exact_dir), f1_at_3(fast_dir)
    common.print_table(
        ["run", "kept words", "test F1@3"],
        [
            ["exact (kl_refresh_steps=1)", f"{len(exact):,}", f"{f1_exact:.4f}"],
            [f"fast (kl_refresh_steps={args.refresh_steps})", f"{len(fast):,}", f"{f1_fast:.4f}"],
        ],
    )
    print(
        f"kept by both: {len(common_words):,} ({100 * overlap:.2f}% of the exact run's); "
        f"only exact: {len(exact - fast):,}; only fast: {len(fast - exact):,}; "
        f"Jaccard {len(common_words) / max(len(exact | fast), 1):.4f}"
    )
    common.verdict("kept-word overlap, fraction of the exact run's", overlap, 0.99, True, False)
    common.verdict("test F1@3 difference, points", abs(f1_fast - f1_exact) * 100, 0.2, timed=False)
    common.finish()


if __name__ == "__main__":
    main()
