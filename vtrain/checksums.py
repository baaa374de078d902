"""sha256 checksums that tell a file as written from a truncated or altered one.

A checksum is recorded when a file is written (`vtrain.io.atomic_path(...,
checksum=True)` writes a sidecar `<file>.sha256` in `sha256sum`'s format;
a backup's manifest holds its weights file's digest) and checked before the
file is loaded, so a file damaged on disk is named in a clear message
instead of failing deep inside a deserialiser, or worse, loading.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "blob.bin")
>>> with open(path, "wb") as f:
...     _ = f.write(b"abc")
>>> sha256_of(path)[:16]
'ba7816bf8f01cfea'
"""

import hashlib
import os

SIDECAR_SUFFIX = ".sha256"
_CHUNK = 1 << 20


class CorruptFileError(ValueError):
    """A file's content does not match the checksum recorded when it was written.

    Also raised for a state file that is missing although its record says it
    exists, or that does not parse. Attributes: `path`, `reason` (what was
    found).

    Example:
    >>> str(CorruptFileError("run/best.keras", "it is missing", "Restore it."))
    "Corrupt state on disk: 'run/best.keras': it is missing. Restore it."
    """

    def __init__(self, path, reason, fix=""):
        super().__init__(
            f"Corrupt state on disk: {os.fspath(path)!r}: {reason}." + (f" {fix}" if fix else "")
        )
        self.path, self.reason = os.fspath(path), reason


def sha256_of(path):
    """The hex sha256 digest of the file at `path`, read in 1 MB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sidecar_path(path):
    """`path` + `.sha256`: where `vtrain.io` records a file's checksum."""
    return os.fspath(path) + SIDECAR_SUFFIX


def sidecar_text(digests, path):
    """The sidecar's content: one `sha256sum` line per accepted digest.

    Example:
    >>> sidecar_text(["ab" * 32], "dir/best.keras") == "ab" * 32 + "  best.keras\\n"
    True
    """
    name = os.path.basename(os.fspath(path))
    return "".join(f"{digest}  {name}\n" for digest in digests)


def recorded_digests(path):
    """The digests `path`'s sidecar accepts; None when it has no sidecar.

    Normally one. While a file is being replaced the sidecar accepts the old
    and the new content (see `vtrain.io.atomic_path`), so a crash between
    the two renames never makes an intact file look corrupt. A sidecar that
    does not parse accepts nothing.
    """
    try:
        with open(sidecar_path(path), encoding="ascii") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return []
    digests = []
    for line in lines:
        digest = line.split(" ", 1)[0]
        if len(digest) == 64 and all(c in "0123456789abcdef" for c in digest):
            digests.append(digest)
    return digests


def verify(path, expected=None):
    """Checks `path` against `expected` (a digest) or its sidecar; returns its digest.

    Without `expected` and without a sidecar (a file written before
    checksums, or by another program) the file is not checked and None is
    returned.

    Raises:
        CorruptFileError: the file is missing, or its digest differs.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "blob.bin")
    >>> with open(path, "wb") as f:
    ...     _ = f.write(b"abc")
    >>> verify(path, expected=sha256_of(path)) == sha256_of(path)
    True
    >>> verify(path, expected="0" * 64)
    Traceback (most recent call last):
    ...
    vtrain.checksums.CorruptFileError: Corrupt state on disk: '...blob.bin': its sha256 is ba7816bf8f01..., but 000000000000... was recorded when it was written (the file was truncated or altered after it was written).
    """
    path = os.fspath(path)
    accepted = [expected] if expected is not None else recorded_digests(path)
    if accepted is None:
        return None
    if not os.path.isfile(path):
        raise CorruptFileError(path, "it is missing, but a checksum was recorded for it")
    digest = sha256_of(path)
    if digest not in accepted:
        recorded = " or ".join(f"{d[:12]}..." for d in accepted) or "an unreadable sidecar"
        raise CorruptFileError(
            path,
            f"its sha256 is {digest[:12]}..., but {recorded} was recorded when it "
            "was written (the file was truncated or altered after it was written)",
        )
    return digest
