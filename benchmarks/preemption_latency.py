"""Seconds from SIGTERM (or SIGINT) to the launcher's exit, in mid-epoch.

    python -m benchmarks.preemption_latency              # 5 runs, SIGTERM
    python -m benchmarks.preemption_latency --signal=INT --repeats=3

Each run starts `python -m vtrain.main` on the configs/tiny.py model with
5,000 generated examples (tests/tagging/tiny_tags.write_noisy: 3,948 for
training, in batches of 8: 494 steps an epoch), waits until epoch 2 has begun, waits `--delay`
more seconds (so the signal lands in mid-epoch, the step already traced),
sends the signal and measures: to the "Preempted:" line on stderr (the
step in progress finishes, then the backup is written), the backup's own
write time (from that line), and to the process's exit (interpreter and
TensorFlow shut down). Prints one row per run, the medians, and the load
average before and after (the machine is shared).
"""

import argparse
import os
import pathlib
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from tests.tagging import tiny_tags  # the tests' generated data, not a test

ROOT = pathlib.Path(__file__).resolve().parents[1]


def arguments(data, workdir):
    return [
        sys.executable,
        "-m",
        "vtrain.main",
        f"--config={ROOT / 'configs' / 'tiny.py'}",
        "--deterministic",
        f"--config.data.path={data}",
        "--config.data.min_tag_train_uses=2",
        "--config.data.min_word_count=1",
        "--config.data.max_train_examples=0",
        "--config.data.batch_size=8",
        "--config.train.num_epochs=3",
        "--config.train.learning_rate=3e-4",
        f"--workdir={workdir}",
    ]


def one_run(data, workdir, signum, delay):
    """(seconds to the Preempted line, seconds the save took, seconds to exit, exit code)."""
    log = workdir.with_suffix(".log")
    with open(log, "w") as out:
        process = subprocess.Popen(
            arguments(data, workdir),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1"),
        )
        while "Epoch 2/3" not in log.read_text():
            if process.poll() is not None:
                raise RuntimeError(f"the run ended before epoch 2: {log.read_text()[-2000:]}")
            time.sleep(0.02)
        time.sleep(delay)
        sent = time.monotonic()
        process.send_signal(signum)
        message_at, saved = None, None
        for line in process.stderr:
            if line.startswith("Preempted:"):
                message_at = time.monotonic() - sent
                saved = float(re.search(r"\(([0-9.]+) s\)", line).group(1))
        code = process.wait()
        return message_at, saved, time.monotonic() - sent, code


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--signal", default="TERM", choices=["TERM", "INT"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--delay", type=float, default=0.5, help="seconds into epoch 2")
    args = parser.parse_args()
    signum = getattr(signal, f"SIG{args.signal}")
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        directory = pathlib.Path(directory)
        data = tiny_tags.write_noisy(directory / "noisy.jsonl", count=5000)
        for run in range(args.repeats):
            rows.append(one_run(data, directory / f"run{run}", signum, args.delay))
            print(
                f"run {run}: Preempted line after {rows[-1][0]:.2f} s (save {rows[-1][1]:.2f} s), "
                f"exit {rows[-1][3]} after {rows[-1][2]:.2f} s",
                flush=True,
            )
    print(
        f"SIG{args.signal}, median of {len(rows)}: Preempted line "
        f"{statistics.median(r[0] for r in rows):.2f} s, save "
        f"{statistics.median(r[1] for r in rows):.2f} s, exit "
        f"{statistics.median(r[2] for r in rows):.2f} s (max {max(r[2] for r in rows):.2f} s); "
        f"exit codes {sorted({r[3] for r in rows})}"
    )
    print(
        f"machine: {os.cpu_count()} cores, load average (1 min) {load_before[0]:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after"
    )


if __name__ == "__main__":
    main()
