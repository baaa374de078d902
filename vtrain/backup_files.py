"""The files of an `AtomicBackupAndRestore` backup, and which one a resume uses.

::

    BACKUP_DIR/backup-<n>.weights.h5          weights and optimizer state of backup n
    BACKUP_DIR/training_metadata.json         manifest of the newest backup
    BACKUP_DIR/training_metadata.previous.json  manifest of the one before

A manifest names its weights file with that file's sha256, the position
(`epoch` to resume at, `batches_done` of it) and the state Keras's weights
leave out (`seed_states`, `metrics`), and carries a `checksum` of its own
content. Each file is written atomically; the rename of the newest
manifest is the commit point; two backups are kept, so when the newest is
damaged on disk (truncated, altered) a resume falls back to the one before.

>>> import tempfile
>>> directory = tempfile.mkdtemp()
>>> def write(path, size_hint):
...     with open(path, "wb") as f:
...         _ = f.write(b"weights")
>>> manifest = commit(directory, {"epoch": 1, "batches_done": 0}, write, previous=None)
>>> newest_intact(directory)[0]["weights"]
'backup-1.weights.h5'
"""

import contextlib
import hashlib
import json
import os
import re

from vtrain import checksums
from vtrain import io as vtrain_io

METADATA = "training_metadata.json"
PREVIOUS = "training_metadata.previous.json"
_WEIGHTS = re.compile(r"backup-(\d+)\.weights\.h5")


def commit(directory, state, write_weights, previous):
    """Writes a new backup of `state` and returns its manifest.

    `write_weights(path, size_hint)` writes the weights file (atomically;
    `size_hint` is the previous weights file's size, for a full-disk
    message); then `previous` (the manifest of the last intact backup, or
    None) becomes `training_metadata.previous.json`, and the new manifest
    `training_metadata.json`. Weights files neither names are removed.
    """
    os.makedirs(directory, exist_ok=True)
    number = 1 + max([0, *(_number(name) for name in os.listdir(directory))])
    weights = f"backup-{number}.weights.h5"
    path = os.path.join(directory, weights)
    size_hint = 0
    if previous is not None and os.path.isfile(os.path.join(directory, previous["weights"])):
        size_hint = os.path.getsize(os.path.join(directory, previous["weights"]))
    write_weights(path, size_hint)
    manifest = {**state, "weights": weights, "sha256": checksums.sha256_of(path)}
    manifest["checksum"] = _checksum(manifest)
    if previous is None:
        _remove(os.path.join(directory, PREVIOUS))
    else:
        vtrain_io.atomic_write_json(os.path.join(directory, PREVIOUS), previous)
    vtrain_io.atomic_write_json(os.path.join(directory, METADATA), manifest)
    kept = {weights} | ({previous["weights"]} if previous else set())
    for name in os.listdir(directory):
        if _WEIGHTS.fullmatch(name) and name not in kept:
            _remove(os.path.join(directory, name))
    return manifest


def newest_intact(directory):
    """`(manifest, problems)`: the newest backup that passes its checks, and the others'.

    `manifest` is None when no backup passes (or there is none);
    `problems` lists a `vtrain.checksums.CorruptFileError` for each
    manifest skipped, newest first. A manifest written before checksums
    (no `sha256`) is accepted if its weights file exists.
    """
    intact, problems = all_intact(directory, stop_at_first=True)
    return (intact[0] if intact else None), problems


def position(manifest):
    """`(epoch, batches_done)` a manifest resumes at; `(0, 0)` for None (a fresh start)."""
    if manifest is None:
        return (0, 0)
    return (manifest["epoch"], manifest.get("batches_done", 0))


def all_intact(directory, stop_at_first=False):
    """`(manifests, problems)`: every backup that passes its checks, newest first."""
    intact, problems = [], []
    for name in (METADATA, PREVIOUS):
        path = os.path.join(directory, name)
        if not os.path.exists(path):
            continue
        try:
            manifest = read_manifest(path)
            weights = os.path.join(directory, manifest["weights"])
            if "sha256" in manifest:
                checksums.verify(weights, expected=manifest["sha256"])
            elif not os.path.isfile(weights):
                raise checksums.CorruptFileError(weights, f"it is missing, but {path} names it")
        except checksums.CorruptFileError as error:
            problems.append(error)
            continue
        intact.append(manifest)
        if stop_at_first:
            break
    return intact, problems


def read_manifest(path):
    """The manifest in `path`, checked; raises `CorruptFileError` naming what is wrong.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), METADATA)
    >>> with open(path, "w") as f:
    ...     _ = f.write('{"epoch": 2, "batch": 0}')
    >>> read_manifest(path)
    Traceback (most recent call last):
    ...
    vtrain.checksums.CorruptFileError: Corrupt state on disk: '...training_metadata.json': received {"epoch": 2, "batch": 0}: no 'weights' (a string naming backup-<n>.weights.h5). Expected a manifest as vtrain.callbacks.AtomicBackupAndRestore writes it, e.g. {"epoch": 3, "batches_done": 0, "weights": "backup-3.weights.h5", ...} (a Keras BackupAndRestore backup has no 'weights' entry).
    """
    with open(path, "rb") as f:
        data = f.read()
    try:
        manifest = json.loads(data.decode("utf-8"))
        problem = _problem(manifest)
    except (UnicodeDecodeError, ValueError) as error:
        problem = f"not JSON ({error})"
    if problem:
        raise checksums.CorruptFileError(
            path,
            f"received {data[:200].decode('utf-8', 'replace')}: {problem}",
            'Expected a manifest as vtrain.callbacks.AtomicBackupAndRestore writes it, e.g. {"epoch": '
            '3, "batches_done": 0, "weights": "backup-3.weights.h5", ...} (a Keras '
            "BackupAndRestore backup has no 'weights' entry).",
        )
    return manifest


def _problem(manifest):
    if not isinstance(manifest, dict):
        return "not a JSON object"
    if not isinstance(manifest.get("weights"), str) or not _WEIGHTS.fullmatch(manifest["weights"]):
        return "no 'weights' (a string naming backup-<n>.weights.h5)"
    for field in ("epoch", "batches_done"):
        value = manifest.get(field, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"{field!r} is {value!r}, not an integer >= 0"
    if "checksum" in manifest and manifest["checksum"] != _checksum(manifest):
        return "its checksum does not match its content (it was altered after it was written)"
    return None


def _checksum(manifest):
    content = {key: value for key, value in manifest.items() if key != "checksum"}
    text = json.dumps(content, sort_keys=True, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _number(name):
    match = _WEIGHTS.fullmatch(name)
    return int(match.group(1)) if match else 0


def _remove(path):
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
