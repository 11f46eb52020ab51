"""IDX files (the MNIST format) and the MNIST / Fashion-MNIST loaders."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from physnn.data._paths import find_file
from physnn.errors import ConfigurationError, DataFormatError

# IDX type byte -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
MNIST_KINDS = ("mnist", "fashion-mnist")
SPLITS = {"train": "train", "test": "t10k"}


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DataFormatError(f"IDX file {path}: not a valid or complete gzip stream ({err})") from err


def load_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into an array of its stored shape.

    The header is ``0x00 0x00 <type> <ndim>`` then ``ndim`` big-endian uint32 sizes; MNIST
    images give ``(N, 28, 28)`` uint8 and labels ``(N,)`` uint8. Multi-byte types come back
    in native byte order. Raises ``DataFormatError`` naming the file if the magic number, type
    byte or payload size is wrong.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise DataFormatError(f"IDX file {path}: bad magic number {data[:4].hex() or '(empty)'}")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise DataFormatError(
            f"IDX file {path}: unknown type byte 0x{code:02x}, "
            f"expected one of {[hex(c) for c in _IDX_DTYPES]}"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFormatError(f"IDX file {path}: truncated header ({len(data)} bytes, {ndim} dims)")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, 4))
    dtype = _IDX_DTYPES[code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise DataFormatError(
            f"IDX file {path}: shape {shape} of {dtype} needs {expected} bytes, file has {len(data)}"
        )
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    kind: str = "mnist",
    split: str = "train",
    download: bool = False,
    verify: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST or Fashion-MNIST from ``<data_dir>/<kind>/*-idx?-ubyte.gz``.

    Returns ``(images, labels)``: images uint8 ``(N, 28, 28)`` (0 = background, 255 = ink),
    labels uint8 ``(N,)`` in 0..9; N = 60000 for ``split="train"``, 10000 for ``"test"``.
    ``download=True`` fetches missing files from the URLs in ``physnn.data._registry.URLS``.
    """
    if kind not in MNIST_KINDS:
        raise ConfigurationError(f"load_mnist: kind must be one of {MNIST_KINDS}, got {kind!r}")
    if split not in SPLITS:
        raise ConfigurationError(f"load_mnist: split must be one of {tuple(SPLITS)}, got {split!r}")
    arrays = []
    for part in ("images-idx3", "labels-idx1"):
        relpath = f"{kind}/{SPLITS[split]}-{part}-ubyte.gz"
        path = find_file(relpath, data_dir, verify_checksum=verify, download=download)
        arrays.append(load_idx(path))
    images, labels = arrays
    if (
        images.dtype != np.uint8
        or labels.dtype != np.uint8
        or images.ndim != 3
        or images.shape[1:] != (28, 28)
        or labels.shape != images.shape[:1]
    ):
        raise DataFormatError(
            f"load_mnist({kind!r}, {split!r}): images {images.dtype}{images.shape} and labels "
            f"{labels.dtype}{labels.shape} are not uint8 (N, 28, 28) / (N,)"
        )
    return images, labels
