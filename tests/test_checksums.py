"""Checksums recorded at write time catch a damaged file before it loads; backups fall back."""

import json
import os

import keras
import numpy as np
import pytest

from vtrain import backup_files, checksums
from vtrain import io as vtrain_io
from vtrain.callbacks import AtomicBackupAndRestore

X = np.linspace(-1, 1, 48).reshape(16, 3).astype("float32")
Y = X.sum(axis=1)


def test_a_sidecar_in_sha256sum_format_names_the_damage(tmp_path):
    path = tmp_path / "model.keras"
    vtrain_io.save_model(
        keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]), path, checksum=True
    )
    digest = checksums.sha256_of(path)
    assert (tmp_path / "model.keras.sha256").read_text() == f"{digest}  model.keras\n"
    assert checksums.verify(path) == digest
    data = path.read_bytes()
    path.write_bytes(data[:-10])  # truncated
    with pytest.raises(checksums.CorruptFileError) as raised:
        checksums.verify(path)
    assert str(raised.value) == (
        f"Corrupt state on disk: '{path}': its sha256 is "
        f"{checksums.sha256_of(path)[:12]}..., but {digest[:12]}... was recorded when it "
        "was written (the file was truncated or altered after it was written)."
    )
    path.unlink()
    with pytest.raises(checksums.CorruptFileError, match="it is missing, but a checksum"):
        checksums.verify(path)


def test_a_file_without_sidecar_is_not_checked(tmp_path):
    (tmp_path / "old.keras").write_bytes(b"written before checksums")
    assert checksums.verify(tmp_path / "old.keras") is None


def test_a_crash_between_sidecar_and_rename_leaves_a_file_that_verifies(tmp_path, monkeypatch):
    # The sidecar is written before the rename; it must accept the old file too.
    path = tmp_path / "best.keras"
    vtrain_io.atomic_write_bytes(path, b"old", checksum=True)

    def crash(src, dst):
        raise OSError("simulated crash before the rename")

    real_replace = os.replace
    monkeypatch.setattr(
        vtrain_io.os,
        "replace",
        lambda src, dst: crash(src, dst) if str(dst) == str(path) else real_replace(src, dst),
    )
    with pytest.raises(OSError, match="simulated crash"):
        vtrain_io.atomic_write_bytes(path, b"new", checksum=True)
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert checksums.verify(path) == checksums.sha256_of(path)
    assert len(checksums.recorded_digests(path)) == 2  # the new one, and the old
    vtrain_io.atomic_write_bytes(path, b"new", checksum=True)
    assert checksums.recorded_digests(path) == [checksums.sha256_of(path)]


def fit(model, directory, epochs):
    model.fit(
        X,
        Y,
        batch_size=4,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=[AtomicBackupAndRestore(directory, delete_checkpoint=False)],
    )


def model():
    keras.utils.set_random_seed(3)
    net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    net.compile(optimizer="adam", loss="mse")
    return net


@pytest.mark.parametrize("damage", ["truncated weights", "altered weights", "altered manifest"])
def test_a_damaged_newest_backup_falls_back_to_the_one_before(tmp_path, damage):
    whole = model()
    fit(whole, tmp_path / "whole", epochs=4)
    directory = tmp_path / "backup"
    fit(model(), directory, epochs=2)
    newest = directory / backup_files.METADATA
    weights = directory / json.loads(newest.read_text())["weights"]
    if damage == "truncated weights":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "altered weights":
        data = bytearray(weights.read_bytes())
        data[-1] ^= 1
        weights.write_bytes(bytes(data))
    else:
        newest.write_text(newest.read_text().replace('"epoch": 2', '"epoch": 3'))
    resumed = model()
    with pytest.warns(UserWarning) as warned:
        history = resumed.fit(
            X,
            Y,
            batch_size=4,
            epochs=4,
            shuffle=False,
            verbose=0,
            callbacks=[AtomicBackupAndRestore(directory)],
        )
    (message,) = [str(w.message) for w in warned if "AtomicBackupAndRestore" in str(w.message)]
    named = newest if damage == "altered manifest" else weights
    assert message.startswith(f"AtomicBackupAndRestore: Corrupt state on disk: '{named}': ")
    assert message.endswith(
        "Resuming from the backup before it, backup-1.weights.h5 (at the end of epoch 1)."
    )
    if damage == "altered manifest":
        assert "its checksum does not match its content" in message
    assert len(history.history["loss"]) == 3  # epochs 2, 3, 4 again
    for got, want in zip(resumed.get_weights(), whole.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_no_intact_backup_left_says_so_and_loads_nothing(tmp_path):
    directory = tmp_path / "backup"
    fit(model(), directory, epochs=2)
    for name in (backup_files.METADATA, backup_files.PREVIOUS):
        weights = directory / json.loads((directory / name).read_text())["weights"]
        weights.write_bytes(b"\x89HDF\r\n\x1a\n")
    fresh = model()
    before = fresh.get_weights()
    with pytest.raises(checksums.CorruptFileError) as raised:
        fit(fresh, directory, epochs=3)
    message = str(raised.value)
    assert message.startswith(
        f"Corrupt state on disk: '{directory}': no intact backup is left to resume from. "
        f"Corrupt state on disk: '{directory / 'backup-2.weights.h5'}': its sha256 is "
    )
    assert f"Corrupt state on disk: '{directory / 'backup-1.weights.h5'}': its sha256" in message
    assert message.endswith(
        "Remove the folder to train again from the first epoch, or restore its files from a copy."
    )
    for got, want in zip(fresh.get_weights(), before):
        np.testing.assert_array_equal(got, want)
