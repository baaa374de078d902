"""Atomic file writes: a kill never leaves a half-written file behind.

Every writer here writes a temporary file in the target's own directory,
flushes it to disk (`fsync`), renames it over the target with `os.replace`
(atomic on POSIX and Windows within one file system) and then syncs the
directory, so the rename itself survives a power cut. A crash at any point
leaves either the old file or the new one, complete, plus at worst a hidden
`.tmp-*` file; `remove_temporaries(directory)` clears those at start-up.

A write that runs out of space (`ENOSPC`, or a quota's `EDQUOT`) raises
`DiskFullError`, naming the file, the space it needs and the space left;
the previous version of the file is untouched. With `checksum=True` a
sidecar `<file>.sha256` records the file's digest (`vtrain.checksums`).

Keras's own `model.save` / `save_weights` (and so `ModelCheckpoint` and
`BackupAndRestore`) open the target itself and write into it: a kill
mid-write leaves a truncated file that fails to load. Use `save_model`,
`save_weights` and the callbacks in `vtrain.callbacks` instead.
"""

import contextlib
import errno
import glob
import json
import os
import shutil
import tempfile

from vtrain import checksums

_TMP_PREFIX = ".tmp-"
# The mode a plain open() would give a new file (mkstemp makes it 0600).
_UMASK = os.umask(0)
os.umask(_UMASK)


class DiskFullError(OSError):
    """A write ran out of disk space (or quota); the previous file is unchanged.

    An `OSError` with `errno.ENOSPC` (or `EDQUOT`). Attributes: `path`,
    `needed` (bytes the file needs, at least: what was written before the
    failure, or the size of its previous version, whichever is larger) and
    `free` (bytes free in its directory, from `shutil.disk_usage`).

    Example:
    >>> error = DiskFullError("run/backup/b.h5", needed=3_500_000, free=1_000)
    >>> error.errno == errno.ENOSPC
    True
    >>> print(error)
    Cannot write 'run/backup/b.h5': no space left on device. The file needs about 3.5 MB (3,500,000 bytes); 'run/backup' has 1.0 kB (1,000 bytes) free. Nothing was changed: the previous version of the file, if any, is intact. Free at least 3.5 MB on that disk, then run again.
    """

    def __init__(self, path, needed, free, code=errno.ENOSPC):
        path = os.fspath(path)
        directory = os.path.dirname(path) or "."
        message = (
            f"Cannot write {path!r}: no space left on device. The file needs about "
            f"{_size(needed)}; {directory!r} has {_size(free)} free. Nothing was "
            "changed: the previous version of the file, if any, is intact. Free at "
            f"least {_short_size(needed)} on that disk, then run again."
        )
        super().__init__(code, message)
        self.path, self.needed, self.free = path, needed, free

    def __str__(self):
        return self.strerror


@contextlib.contextmanager
def atomic_path(path, checksum=False, size_hint=0):
    """Yields a temporary path to write; on success it replaces `path`.

    The temporary file is in the same directory and ends with the same
    name, so suffix checks (`.keras`, `.weights.h5`) still pass. If the
    block raises, the temporary file is removed and `path` is untouched.
    Running out of space raises `DiskFullError` (see there; `size_hint`,
    in bytes, is what the file is expected to need, for its message).

    With `checksum=True`, `path + ".sha256"` records the new file's sha256
    (`sha256sum -c` reads it). It is rewritten around the rename, first
    accepting the old and the new digest, then only the new one, so at no
    point does an intact file fail `vtrain.checksums.verify`.

    Example:
    >>> import os, tempfile
    >>> directory = tempfile.TemporaryDirectory()
    >>> target = os.path.join(directory.name, "notes.txt")
    >>> with atomic_path(target) as tmp:
    ...     with open(tmp, "w") as f:
    ...         _ = f.write("done")
    >>> open(target).read(), os.listdir(directory.name)
    ('done', ['notes.txt'])
    >>> with atomic_path(target, checksum=True) as tmp:
    ...     with open(tmp, "w") as f:
    ...         _ = f.write("checked")
    >>> sorted(os.listdir(directory.name))
    ['notes.txt', 'notes.txt.sha256']
    >>> checksums.verify(target) == checksums.sha256_of(target)
    True
    >>> directory.cleanup()
    """
    path = os.fspath(path)
    if "://" in path:
        raise ValueError(
            f"Cannot write {path!r} atomically: atomic writes need a local "
            "file system (write then rename). Write locally, then copy."
        )
    directory, name = os.path.split(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=_TMP_PREFIX, suffix=f"-{name}")
    except OSError as error:
        if is_disk_full(error):
            raise _disk_full(path, size_hint, error) from error
        raise type(error)(
            error.errno,
            f"Cannot write {path!r}: cannot create a file in {directory!r} "
            f"({error.strerror}). Check that the directory exists and is "
            "writable.",
        ) from error
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        _fsync(tmp)
        if checksum:
            digest = checksums.sha256_of(tmp)
            old = checksums.recorded_digests(path) or []
            _write_sidecar(path, [digest, *old[:1]])
        os.replace(tmp, path)
        if checksum:
            _write_sidecar(path, [digest])
    except BaseException as error:
        written = os.path.getsize(tmp) if os.path.exists(tmp) else 0
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        if not isinstance(error, DiskFullError) and is_disk_full(error):
            raise _disk_full(path, max(written, size_hint), error) from error
        raise
    # Best effort: some systems cannot open a directory to sync it.
    with contextlib.suppress(OSError):
        _fsync(directory)


def is_disk_full(error):
    """True if `error` (an exception) says the disk or the quota is full.

    h5py reports a full disk as an `OSError` without `errno`, with the C
    library's message inside its own, so the message is read too.

    Example:
    >>> is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    True
    >>> is_disk_full(OSError("Unable to synchronously write data (file write failed: "
    ...                      "errno = 28, error message = 'No space left on device')"))
    True
    >>> is_disk_full(OSError(errno.EACCES, "Permission denied"))
    False
    """
    if not isinstance(error, OSError):
        return False
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(error)
    return "No space left on device" in text or "Disk quota exceeded" in text


def _disk_full(path, written, error):
    """The `DiskFullError` for `path`, sized from what was written and what it replaces."""
    previous = os.path.getsize(path) if os.path.isfile(path) else 0
    directory = os.path.dirname(os.path.abspath(path))
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        free = 0
    code = errno.EDQUOT if getattr(error, "errno", None) == errno.EDQUOT else errno.ENOSPC
    return DiskFullError(path, needed=max(written, previous, 1), free=free, code=code)


def _write_sidecar(path, digests):
    atomic_write_text(checksums.sidecar_path(path), checksums.sidecar_text(digests, path))


def _size(count):
    return f"{_short_size(count)} ({count:,} bytes)"


def _short_size(count):
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


def remove_temporaries(directory):
    """Removes the temporary files of killed writes; returns their paths.

    Call it when a run starts on a directory it owns (e.g. the workdir,
    before resuming), never while another process may be writing there:
    an in-progress write's temporary file looks the same.

    Example:
    >>> import os, tempfile
    >>> directory = tempfile.TemporaryDirectory()
    >>> open(os.path.join(directory.name, ".tmp-k1ll3d-model.keras"), "w").close()
    >>> [os.path.basename(p) for p in remove_temporaries(directory.name)]
    ['.tmp-k1ll3d-model.keras']
    >>> os.listdir(directory.name)
    []
    >>> directory.cleanup()
    """
    removed = sorted(glob.glob(os.path.join(glob.escape(os.fspath(directory)), f"{_TMP_PREFIX}*")))
    for path in removed:
        os.remove(path)
    return removed


def atomic_write_bytes(path, data, checksum=False):
    """Writes `data` (bytes) to `path` atomically (`checksum`: see `atomic_path`).

    Example:
    >>> import os, tempfile
    >>> directory = tempfile.TemporaryDirectory()
    >>> target = os.path.join(directory.name, "blob.bin")
    >>> atomic_write_bytes(target, b"\\x00\\x01")
    >>> open(target, "rb").read()
    b'\\x00\\x01'
    >>> directory.cleanup()
    """
    with atomic_path(path, checksum=checksum, size_hint=len(data)) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def atomic_write_text(path, text, encoding="utf-8"):
    """Writes `text` to `path` atomically.

    Example:
    >>> import os, tempfile
    >>> directory = tempfile.TemporaryDirectory()
    >>> target = os.path.join(directory.name, "status.txt")
    >>> atomic_write_text(target, "epoch 3 done\\n")
    >>> open(target).read()
    'epoch 3 done\\n'
    >>> directory.cleanup()
    """
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path, obj, indent=2, sort_keys=True):
    """Writes `obj` as JSON to `path` atomically; NaN and infinity refused.

    JSON has no NaN: Python would write a bare `NaN` that other readers
    reject, so a non-finite number is an error here, raised before `path`
    is touched.

    Example:
    >>> import os, tempfile
    >>> directory = tempfile.TemporaryDirectory()
    >>> target = os.path.join(directory.name, "results.json")
    >>> atomic_write_json(target, {"f1_at_3": 0.54, "epochs": 30})
    >>> print(open(target).read())
    {
      "epochs": 30,
      "f1_at_3": 0.54
    }
    >>> atomic_write_json(target, {"loss": float("nan")})
    Traceback (most recent call last):
    ...
    ValueError: Cannot write ...results.json: the value is not valid JSON (Out of range float values are not JSON compliant...). Replace NaN / infinity (e.g. by None) first; the file was not changed.
    >>> directory.cleanup()
    """
    try:
        text = json.dumps(obj, indent=indent, sort_keys=sort_keys, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise type(error)(
            f"Cannot write {os.fspath(path)}: the value is not valid JSON "
            f"({error}). Replace NaN / infinity (e.g. by None) first; the "
            "file was not changed."
        ) from error
    atomic_write_text(path, text + "\n")


def save_model(model, path, checksum=False, size_hint=0, **kwargs):
    """`model.save(path)` (a `.keras` file), atomically (`checksum`: see `atomic_path`).

    Example:
    >>> import keras, os, tempfile
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> directory = tempfile.TemporaryDirectory()
    >>> target = os.path.join(directory.name, "model.keras")
    >>> save_model(model, target)
    >>> keras.saving.load_model(target).count_params()
    3
    >>> directory.cleanup()
    """
    with atomic_path(path, checksum=checksum, size_hint=size_hint) as tmp:
        model.save(tmp, overwrite=True, **kwargs)


def save_weights(model, path, checksum=False, size_hint=0, **kwargs):
    """`model.save_weights(path)` (a `.weights.h5` file), atomically (see `atomic_path`).

    The file holds the optimizer's state too when the model is compiled.

    Example:
    >>> import keras, os, tempfile
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> directory = tempfile.TemporaryDirectory()
    >>> target = os.path.join(directory.name, "model.weights.h5")
    >>> save_weights(model, target)
    >>> model.load_weights(target)
    >>> directory.cleanup()
    """
    with atomic_path(path, checksum=checksum, size_hint=size_hint) as tmp:
        model.save_weights(tmp, overwrite=True, **kwargs)


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
