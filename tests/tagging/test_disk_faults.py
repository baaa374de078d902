"""A full disk and damaged state files during `train_and_evaluate`: named, nothing lost, resumed.

One workdir goes through three full-disk failures in a row (the backup of
epoch 2, the best checkpoint of epoch 3, results.json), each simulated by
making the atomic writer's fsync of that one file fail with ENOSPC, as a
full disk does; after each, the previous backup and best checkpoint are
checked intact and loadable, and the next run (the same call, space free
again) resumes. A copy of the workdir, taken after the second failure, has
its newest backup truncated: the run falls back to the backup before it.
Both end with the results of an uninterrupted run (`==`).
"""

import contextlib
import errno
import json
import os
import shutil
import signal

import keras
import pytest

from tests import runs
from tests.tagging import tiny_tags
from vtrain import backup_files, checksums
from vtrain import io as vtrain_io
from vtrain.tagging import train

COMPARED = ("test", "validation", "best_epoch", "threshold", "kept_vocabulary", "sparsity")
FREE = 12_345  # what shutil.disk_usage reports during a simulated full disk


def config_for(data):
    return tiny_tags.keras_config(data, num_epochs=3, learning_rate_decay=1.0)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_tags.write_noisy(tmp_path_factory.mktemp("data") / "noisy.jsonl", count=600)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("runs") / "uninterrupted"
    results = train.train_and_evaluate(config_for(data), str(workdir))
    assert results["best_epoch"] == 3  # the weights of the last epoch count
    return results, runs.keras_weights(workdir / "checkpoints" / "best.keras")


@contextlib.contextmanager
def no_space_for(name):
    """The atomic write of a file called `name` fails with ENOSPC at its fsync."""
    real_fsync, real_usage = vtrain_io._fsync, shutil.disk_usage

    def fsync(path):
        if os.path.basename(path).startswith(".tmp-") and path.endswith(f"-{name}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(path)

    def usage(path):
        return real_usage(path)._replace(free=FREE)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vtrain_io, "_fsync", fsync)
        patch.setattr(vtrain_io.shutil, "disk_usage", usage)
        yield


def fails_for_space(config, workdir, name):
    with no_space_for(name), pytest.raises(vtrain_io.DiskFullError) as raised:
        train.train_and_evaluate(config, str(workdir))
    error = raised.value
    assert error.errno == errno.ENOSPC and os.path.basename(error.path) == name
    assert str(error) == (
        f"Cannot write {error.path!r}: no space left on device. The file needs about "
        f"{vtrain_io._short_size(error.needed)} ({error.needed:,} bytes); "
        f"{os.path.dirname(error.path)!r} has 12.3 kB (12,345 bytes) free. Nothing was "
        "changed: the previous version of the file, if any, is intact. Free at least "
        f"{vtrain_io._short_size(error.needed)} on that disk, then run again."
    )
    assert not [n for n in runs.files_under(workdir) if ".tmp-" in n]
    return error


def assert_state_intact(workdir, backup_epoch, best_epoch):
    """The newest backup and the best checkpoint pass their checksums and load."""
    manifest, problems = backup_files.newest_intact(workdir / "backup")
    assert problems == [] and manifest["epoch"] == backup_epoch
    best = workdir / "checkpoints" / "best.keras"
    assert checksums.verify(best) == checksums.sha256_of(best)
    assert keras.saving.load_model(best, compile=False).count_params() > 0
    assert json.loads((workdir / "checkpoints" / "best.json").read_text())["epoch"] == best_epoch
    runs.assert_every_file_loads(workdir)


def assert_same_results(workdir, results, reference):
    expected, weights = reference
    for key in COMPARED:
        assert results[key] == expected[key], key
    saved = runs.keras_weights(workdir / "checkpoints" / "best.keras")
    assert sorted(saved) == sorted(weights)
    for name, value in weights.items():
        assert (saved[name] == value).all(), name


@pytest.mark.slow
def test_full_disk_three_times_then_damaged_backup_both_resume_exactly(data, reference, tmp_path):
    config, workdir = config_for(data), tmp_path / "run"
    handler = signal.getsignal(signal.SIGTERM)

    error = fails_for_space(config, workdir, "backup-2.weights.h5")
    assert_state_intact(workdir, backup_epoch=1, best_epoch=1)
    # fit stopped on the error: SIGTERM acts again, it is not only recorded.
    assert signal.getsignal(signal.SIGTERM) == handler

    fails_for_space(config, workdir, "best.keras")  # epoch 3 improved on epoch 2
    assert_state_intact(workdir, backup_epoch=2, best_epoch=1)
    # The backup that did not fit then was written now: the size it named.
    assert error.needed == os.path.getsize(workdir / "backup" / "backup-2.weights.h5")
    damaged = tmp_path / "damaged"
    shutil.copytree(workdir, damaged)

    fails_for_space(config, workdir, "results.json")
    assert not (workdir / "results.json").exists() and not (workdir / "backup").exists()
    results = train.train_and_evaluate(config, str(workdir))  # evaluates, trains nothing
    assert results["epochs_run_in_last_session"] == 0
    assert_same_results(workdir, results, reference)

    # The newest backup of the copy (end of epoch 2) loses its second half.
    newest = json.loads((damaged / "backup" / "training_metadata.json").read_text())
    weights = damaged / "backup" / newest["weights"]
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.warns(UserWarning) as warned:
        results = train.train_and_evaluate(config, str(damaged))
    (message,) = [str(w.message) for w in warned if "AtomicBackupAndRestore" in str(w.message)]
    assert message.startswith(
        f"AtomicBackupAndRestore: Corrupt state on disk: '{weights}': its sha256 is "
    )
    assert message.endswith(
        "was recorded when it was written (the file was truncated or altered after it "
        "was written). Resuming from the backup before it, backup-1.weights.h5 (at the "
        "end of epoch 1)."
    )
    assert results["epochs_run_in_last_session"] == 2
    assert_same_results(damaged, results, reference)


@pytest.mark.slow
def test_damaged_best_checkpoint_is_named_before_anything_loads_it(data, tmp_path):
    config, workdir = config_for(data), tmp_path / "run"
    fails_for_space(config, workdir, "results.json")  # trained; best.keras is final
    best = workdir / "checkpoints" / "best.keras"
    data_bytes = bytearray(best.read_bytes())
    data_bytes[len(data_bytes) // 2] ^= 0xFF  # one byte altered, same size
    best.write_bytes(bytes(data_bytes))
    with pytest.raises(checksums.CorruptFileError) as raised:
        train.train_and_evaluate(config, str(workdir))
    state = workdir / "checkpoints" / "best.json"
    assert str(raised.value).startswith(f"Corrupt state on disk: '{best}': its sha256 is ")
    assert str(raised.value).endswith(
        "(the file was truncated or altered after it was written). No intact copy of "
        f"the best model is left. To continue without it, remove '{best}', its .sha256 "
        f"and '{state}' (training resumes from its backup, and the best is chosen among "
        "the epochs still to train), or restore them from a copy, or train again into "
        "a new workdir."
    )
    assert not (workdir / "results.json").exists()


@pytest.mark.parametrize(
    "name, fix",
    [
        (
            "results.json",
            "Remove it: re-running the same command then evaluates the trained model again.",
        ),
        ("config.json", "Restore it from a copy, or train into a new --workdir."),
    ],
)
def test_json_state_that_does_not_parse_is_named_with_the_fix(data, tmp_path, name, fix):
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / name).write_bytes(b'{"test": {"f1@3": 0.5')  # cut short
    with pytest.raises(checksums.CorruptFileError) as raised:
        train.train_and_evaluate(config_for(data), str(workdir))
    assert str(raised.value) == (
        f"Corrupt state on disk: '{workdir / name}': it is not valid JSON (Expecting ',' "
        "delimiter: line 1 column 22 (char 21); it starts with "
        'b\'{"test": {"f1@3": 0.5\'), though it was written whole. ' + fix
    )
    assert runs.files_under(workdir) == [name]


def test_the_launcher_reports_damaged_state_in_one_line(data, tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "results.json").write_bytes(b'{"test": ')
    process = runs.launch(
        f"--config={runs.TINY}", f"--config.data.path={data}", f"--workdir={workdir}"
    )
    assert process.returncode == 1
    assert (
        process.stderr.strip()
        .splitlines()[-1]
        .startswith(
            f"Error: Corrupt state on disk: '{workdir / 'results.json'}': it is not valid JSON"
        )
    )
    assert "Traceback" not in process.stderr
