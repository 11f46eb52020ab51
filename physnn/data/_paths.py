"""Data-directory resolution, SHA-256 verification, downloads and missing-file errors.

The data directory is chosen in this order:

1. the ``data_dir`` argument of a loader (what a ``--data-dir`` CLI flag passes);
2. the environment variable ``PHYSNN_DATA``;
3. the user cache: ``$XDG_CACHE_HOME/physnn``, else ``~/.cache/physnn``.

Its layout is that of ``shared/datasets``: ``hillenbrand1995/vowdata.dat``,
``hillenbrand1995/vowels/*.wav``, ``mnist/*.gz``, ``fashion-mnist/*.gz``,
``phyll/acoustic_x_data.csv``...

Verification: files with an embedded hash (:data:`physnn.data._registry.SHA256`)
are always checked. Other files (the 1116 ``.wav`` recordings) are checked only
when the data-dir root holds a ``SHA256SUMS`` (``sha256sum`` format) or a
``MANIFEST.tsv`` (``path, size_bytes, sha256, source``) that lists them;
otherwise they are read unchecked. Digests are cached per process, keyed by
path, mtime and size, so repeated loads do not re-hash.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

from physnn._atomic import default_file_mode
from physnn.data import _registry
from physnn.errors import ChecksumError, DataNotFoundError

ENV_VAR = "PHYSNN_DATA"
_MANIFESTS = ("SHA256SUMS", "MANIFEST.tsv")

_FileKey = tuple[str, int, int]
_digests: dict[_FileKey, str] = {}
_manifests: dict[_FileKey, dict[str, str]] = {}


def _choose(explicit: str | os.PathLike[str] | None) -> tuple[Path, str]:
    """The data directory and a phrase saying how it was chosen."""
    if explicit is not None:
        return Path(explicit).expanduser().absolute(), "from the data_dir argument (--data-dir)"
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser().absolute(), f"from ${ENV_VAR}"
    xdg = os.environ.get("XDG_CACHE_HOME")
    cache = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (cache / "physnn").absolute(), f"default cache dir: no data_dir argument, ${ENV_VAR} unset"


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The absolute data directory: ``explicit``, else ``$PHYSNN_DATA``, else the user cache."""
    return _choose(explicit)[0]


def _not_found(relpath: str, path: Path, root: Path, how: str, extra: str = "") -> DataNotFoundError:
    hint = "" if relpath not in _registry.URLS else " You can also pass download=True to fetch it."
    return DataNotFoundError(
        f"physnn data file {relpath!r} not found.\n"
        f"  looked for: {path}\n"
        f"  data dir:   {root} ({how})\n"
        f"  get it from {_registry.origin(relpath)}, and put it at the path above, "
        f"or point --data-dir / ${ENV_VAR} at a folder that has it.{hint}{extra}"
    )


def _key(path: Path) -> _FileKey:
    st = path.stat()
    return str(path.resolve()), st.st_mtime_ns, st.st_size


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, cached per process by (path, mtime, size)."""
    key = _key(path)
    if key not in _digests:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _digests[key] = h.hexdigest()
    return _digests[key]


def _manifest(root: Path) -> dict[str, str]:
    """``relpath -> sha256`` from the root's ``SHA256SUMS`` or ``MANIFEST.tsv`` ({} if neither)."""
    for name in _MANIFESTS:
        path = root / name
        if not path.is_file():
            continue
        key = _key(path)
        if key not in _manifests:
            table: dict[str, str] = {}
            for line in path.read_text(encoding="utf-8").splitlines():
                if name == "SHA256SUMS" and line.strip():
                    digest, rel = line.split(maxsplit=1)
                    table[rel.lstrip("*")] = digest
                elif name == "MANIFEST.tsv" and line and not line.startswith("path\t"):
                    rel, _size, digest = line.split("\t")[:3]
                    table[rel] = digest
            _manifests[key] = table
        return _manifests[key]
    return {}


def expected_sha256(relpath: str, root: Path) -> str | None:
    """The embedded hash of ``relpath``, else the one in the root's manifest, else None."""
    return _registry.SHA256.get(relpath) or _manifest(root).get(relpath)


def verify(path: Path, expected: str) -> None:
    """Raise :class:`ChecksumError` if the SHA-256 of ``path`` is not ``expected``."""
    actual = sha256_of(path)
    if actual != expected:
        raise ChecksumError(
            f"data file {path} is corrupt or a different version: SHA-256 expected "
            f"{expected}, got {actual}. Delete it and fetch it again (or pass verify=False)."
        )


def _download(url: str, dest: Path, expected: str | None) -> None:
    """Fetch ``url`` into ``dest`` via a temp file in the same folder; verify before renaming."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
                h.update(block)
        if expected is not None and h.hexdigest() != expected:
            raise ChecksumError(
                f"download of {url} into {dest}: SHA-256 expected {expected}, "
                f"got {h.hexdigest()}; nothing was saved."
            )
        os.chmod(tmp, default_file_mode())  # mkstemp made it 0600
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def find_file(
    relpath: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    verify_checksum: bool = True,
    download: bool = False,
) -> Path:
    """Absolute path of ``relpath`` inside the data dir, downloaded and verified as asked.

    Raises :class:`DataNotFoundError` when the file is missing (and cannot be or was not
    downloaded) and :class:`ChecksumError` when its SHA-256 is wrong.
    """
    root, how = _choose(data_dir)
    path = root / relpath
    if not path.is_file():
        url = _registry.URLS.get(relpath)
        if not (download and url):
            raise _not_found(relpath, path, root, how)
        try:
            _download(url, path, _registry.SHA256.get(relpath))
        except OSError as err:  # URLError is an OSError
            raise _not_found(relpath, path, root, how, f"\n  download from {url} failed: {err}") from err
        return path
    if verify_checksum:
        expected = expected_sha256(relpath, root)
        if expected is not None:
            verify(path, expected)
    return path


def find_dir(relpath: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Absolute path of the folder ``relpath`` inside the data dir, or :class:`DataNotFoundError`."""
    root, how = _choose(data_dir)
    path = root / relpath
    if not path.is_dir():
        raise _not_found(relpath, path, root, how)
    return path
