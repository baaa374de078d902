"""Atomic file writes: a kill never leaves a half-written file behind.

Every writer here writes a temporary file in the target's own directory,
flushes it to disk (`fsync`), renames it over the target with `os.replace`
(atomic on POSIX and Windows within one file system) and then syncs the
directory, so the rename itself survives a power cut. A crash at any point
leaves either the old file or the new one, complete, plus at worst a hidden
`.tmp-*` file; `remove_temporaries(directory)` clears those at start-up.

Keras's own `model.save` / `save_weights` (and so `ModelCheckpoint` and
`BackupAndRestore`) open the target itself and write into it: a kill
mid-write leaves a truncated file that fails to load. Use `save_model`,
`save_weights` and the callbacks in `vtrain.callbacks` instead.
"""

import contextlib
import glob
import json
import os
import tempfile

_TMP_PREFIX = ".tmp-"
# The mode a plain open() would give a new file (mkstemp makes it 0600).
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path to write; on success it replaces `path`.

    The temporary file is in the same directory and ends with the same
    name, so suffix checks (`.keras`, `.weights.h5`) still pass. If the
    block raises, the temporary file is removed and `path` is untouched.

    Example:
    >>> import os, tempfile
    >>> directory = tempfile.TemporaryDirectory()
    >>> target = os.path.join(directory.name, "notes.txt")
    >>> with atomic_path(target) as tmp:
    ...     with open(tmp, "w") as f:
    ...         _ = f.write("done")
    >>> open(target).read(), os.listdir(directory.name)
    ('done', ['notes.txt'])
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
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    # Best effort: some systems cannot open a directory to sync it.
    with contextlib.suppress(OSError):
        _fsync(directory)


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


def atomic_write_bytes(path, data):
    """Writes `data` (bytes) to `path` atomically.

    Example:
    >>> import os, tempfile
    >>> directory = tempfile.TemporaryDirectory()
    >>> target = os.path.join(directory.name, "blob.bin")
    >>> atomic_write_bytes(target, b"\\x00\\x01")
    >>> open(target, "rb").read()
    b'\\x00\\x01'
    >>> directory.cleanup()
    """
    with atomic_path(path) as tmp:
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


def save_model(model, path, **kwargs):
    """`model.save(path)` (a `.keras` file), atomically.

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
    with atomic_path(path) as tmp:
        model.save(tmp, overwrite=True, **kwargs)


def save_weights(model, path, **kwargs):
    """`model.save_weights(path)` (a `.weights.h5` file), atomically.

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
    with atomic_path(path) as tmp:
        model.save_weights(tmp, overwrite=True, **kwargs)


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
