"""Tests for vtrain.io: atomic writes survive a crash between write and rename."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest

from vtrain import io as vtrain_io

IO_FILE = vtrain_io.__file__


def _listing(directory):
    return sorted(os.listdir(directory))


def _crash_on_replace(monkeypatch):
    """Makes the rename fail, as if the process died just before it."""

    def replace(src, dst):
        raise OSError("simulated crash between write and rename")

    monkeypatch.setattr(vtrain_io.os, "replace", replace)


def _model(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])


def test_text_json_bytes_round_trip_and_leave_no_temporaries(tmp_path):
    vtrain_io.atomic_write_text(tmp_path / "a.txt", "héllo\n")
    vtrain_io.atomic_write_json(tmp_path / "b.json", {"b": [1, 2.5], "a": None})
    vtrain_io.atomic_write_bytes(tmp_path / "c.bin", b"\x00\xff")
    vtrain_io.atomic_write_text(tmp_path / "a.txt", "overwritten")
    assert (tmp_path / "a.txt").read_text() == "overwritten"
    assert json.loads((tmp_path / "b.json").read_text()) == {"a": None, "b": [1, 2.5]}
    assert (tmp_path / "c.bin").read_bytes() == b"\x00\xff"
    assert _listing(tmp_path) == ["a.txt", "b.json", "c.bin"]


def test_new_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    vtrain_io.atomic_write_text(tmp_path / "a.txt", "x")
    assert os.stat(tmp_path / "a.txt").st_mode & 0o777 == 0o666 & ~umask


def test_crash_before_rename_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    vtrain_io.atomic_write_json(target, {"epoch": 1})
    _crash_on_replace(monkeypatch)
    with pytest.raises(OSError, match="simulated crash"):
        vtrain_io.atomic_write_json(target, {"epoch": 2})
    assert json.loads(target.read_text()) == {"epoch": 1}
    assert _listing(tmp_path) == ["results.json"]


def test_crash_while_writing_keeps_the_previous_file(tmp_path):
    target = tmp_path / "notes.txt"
    vtrain_io.atomic_write_text(target, "old")
    with pytest.raises(KeyboardInterrupt):
        with vtrain_io.atomic_path(target) as tmp:
            with open(tmp, "w") as f:
                f.write("half of the new")
            raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert _listing(tmp_path) == ["notes.txt"]


@pytest.mark.parametrize("kind", ["model", "weights"])
def test_crash_before_rename_keeps_a_loadable_checkpoint(tmp_path, monkeypatch, kind):
    path = tmp_path / ("model.keras" if kind == "model" else "model.weights.h5")
    save = vtrain_io.save_model if kind == "model" else vtrain_io.save_weights
    old, new = _model(0), _model(1)
    save(old, path)
    _crash_on_replace(monkeypatch)
    with pytest.raises(OSError, match="simulated crash"):
        save(new, path)
    assert _listing(tmp_path) == [path.name]
    if kind == "model":
        loaded = keras.saving.load_model(path)
    else:
        loaded = _model(2)
        loaded.load_weights(path)
    for got, want in zip(loaded.get_weights(), old.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_keras_own_save_is_not_atomic(tmp_path, monkeypatch):
    # Why vtrain.io exists: a crash in the middle of model.save truncates
    # the previous file.
    path = tmp_path / "model.keras"
    model = _model(0)
    model.save(path)
    import zipfile

    def crash(self, *args, **kwargs):
        raise OSError("simulated crash while writing")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", crash)
    monkeypatch.setattr(zipfile.ZipFile, "open", crash)
    with pytest.raises(OSError):
        model.save(path)
    with pytest.raises(Exception):
        keras.saving.load_model(path)
    # The same crash through vtrain.io leaves the old file loadable.
    monkeypatch.undo()
    vtrain_io.save_model(model, path)
    monkeypatch.setattr(zipfile.ZipFile, "open", crash)
    with pytest.raises(OSError):
        vtrain_io.save_model(model, path)
    monkeypatch.undo()
    keras.saving.load_model(path)
    assert _listing(tmp_path) == ["model.keras"]


_KILLED_WRITER = textwrap.dedent(
    """
    import importlib.util, sys, time
    spec = importlib.util.spec_from_file_location("vtrain_io", sys.argv[1])
    io = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(io)
    with io.atomic_path(sys.argv[2]) as tmp:
        with open(tmp, "w") as f:
            f.write('{"epoch": 2, "half": ')
            f.flush()
        print("writing", flush=True)
        time.sleep(60)
    """
)


def test_sigkill_mid_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "results.json"
    vtrain_io.atomic_write_json(target, {"epoch": 1})
    writer = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, IO_FILE, str(target)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "writing"
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait(timeout=10)
        writer.stdout.close()
    assert json.loads(target.read_text()) == {"epoch": 1}
    leftovers = [name for name in _listing(tmp_path) if name != "results.json"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".tmp-")
    assert vtrain_io.remove_temporaries(tmp_path) == [str(tmp_path / leftovers[0])]
    assert _listing(tmp_path) == ["results.json"]


def test_json_refuses_nan_and_leaves_the_file(tmp_path):
    target = tmp_path / "results.json"
    vtrain_io.atomic_write_json(target, {"f1": 0.5})
    with pytest.raises(ValueError, match=r"results.json: the value is not valid JSON.*NaN"):
        vtrain_io.atomic_write_json(target, {"f1": float("nan")})
    with pytest.raises(TypeError, match="not valid JSON"):
        vtrain_io.atomic_write_json(target, {"f1": object()})
    assert json.loads(target.read_text()) == {"f1": 0.5}
    assert _listing(tmp_path) == ["results.json"]


def test_errors_name_the_path_and_the_fix(tmp_path):
    missing = tmp_path / "no" / "such" / "dir" / "a.txt"
    with pytest.raises(FileNotFoundError, match="cannot create a file in .*exists and is writable"):
        vtrain_io.atomic_write_text(missing, "x")
    with pytest.raises(ValueError, match="need a local file system"):
        vtrain_io.atomic_write_text("gs://bucket/a.txt", "x")


def test_read_only_directory_keeps_the_error_type(tmp_path, monkeypatch):
    # Simulated: the tests may run as root, which ignores permissions.
    def mkstemp(**kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(vtrain_io.tempfile, "mkstemp", mkstemp)
    with pytest.raises(PermissionError, match="Permission denied.*exists and is writable"):
        vtrain_io.atomic_write_text(tmp_path / "a.txt", "x")


def test_time_is_small(tmp_path):
    # fsync per write: a few ms on a local disk, not seconds.
    start = time.perf_counter()
    for i in range(20):
        vtrain_io.atomic_write_text(tmp_path / "a.txt", str(i))
    assert time.perf_counter() - start < 5


def _full_disk(monkeypatch, free=2_000):
    """Every write fails with ENOSPC when flushed; `free` bytes are reported free."""

    def fsync(path):
        if os.path.basename(path).startswith(".tmp-"):
            raise OSError(errno.ENOSPC, "No space left on device")

    real_usage = shutil.disk_usage
    monkeypatch.setattr(vtrain_io, "_fsync", fsync)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real_usage(path)._replace(free=free))


def test_full_disk_keeps_the_previous_file_and_names_the_space(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    vtrain_io.atomic_write_json(target, {"epoch": 1})
    _full_disk(monkeypatch)
    text = {"epoch": 2, "notes": "x" * 5000}
    with pytest.raises(vtrain_io.DiskFullError) as raised:
        vtrain_io.atomic_write_json(target, text)
    needed = len(json.dumps(text, indent=2, sort_keys=True)) + 1
    assert raised.value.errno == errno.ENOSPC and raised.value.needed == needed
    assert str(raised.value) == (
        f"Cannot write '{target}': no space left on device. The file needs about "
        f"5.0 kB ({needed:,} bytes); '{tmp_path}' has 2.0 kB (2,000 bytes) free. Nothing "
        "was changed: the previous version of the file, if any, is intact. Free at "
        "least 5.0 kB on that disk, then run again."
    )
    assert json.loads(target.read_text()) == {"epoch": 1}
    assert _listing(tmp_path) == ["results.json"]


def test_full_disk_while_keras_writes_reads_h5pys_message(tmp_path, monkeypatch):
    # h5py reports ENOSPC as an OSError without errno, in its own words.
    path = tmp_path / "backup.weights.h5"
    model = _model(0)
    vtrain_io.save_weights(model, path, checksum=True)
    before = path.read_bytes()

    def save_weights(self, filepath, overwrite=True):
        with open(filepath, "wb") as f:
            f.write(b"\x89HDF" + b"\0" * 300)
        raise OSError(
            "Unable to synchronously write data (file write failed: time = Mon Dec  1 "
            "00:00:00 2026, filename = 'x', file descriptor = 5, errno = 28, error "
            "message = 'No space left on device', buf = 0x1, total write size = 8)"
        )

    monkeypatch.setattr(keras.Model, "save_weights", save_weights)
    for hint in (0, 100_000):
        with pytest.raises(vtrain_io.DiskFullError, match="no space left on device") as raised:
            vtrain_io.save_weights(model, path, checksum=True, size_hint=hint)
        # At least the previous version's size, or the caller's hint: more than
        # the 304 bytes written before the failure.
        assert raised.value.needed == max(hint, len(before))
    assert path.read_bytes() == before and vtrain_io.checksums.verify(path)
    assert _listing(tmp_path) == ["backup.weights.h5", "backup.weights.h5.sha256"]


def test_other_write_errors_are_not_called_a_full_disk(tmp_path, monkeypatch):
    def fsync(path):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(vtrain_io, "_fsync", fsync)
    with pytest.raises(OSError) as raised:
        vtrain_io.atomic_write_text(tmp_path / "a.txt", "x")
    assert type(raised.value) is OSError and raised.value.errno == errno.EIO
