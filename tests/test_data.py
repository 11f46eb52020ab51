"""Tests of physnn.data: paths, checksums, downloads, real-data loaders and offline data."""

from __future__ import annotations

import gzip
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from physnn.data import (
    VOWELS,
    _paths,
    _registry,
    data_dir,
    load_digits_offline,
    load_hillenbrand_table,
    load_idx,
    load_mnist,
    load_phyll_cavity,
    load_vowel_audio,
    load_vowel_formants,
    synthesize_vowel_audio,
    synthesize_vowel_formants,
)
from physnn.data.synthetic import HILLENBRAND_STATS, STAT_COLUMNS
from physnn.errors import ChecksumError, ConfigurationError, DataFormatError, DataNotFoundError

REAL = Path(os.environ.get("PHYSNN_DATA") or Path(__file__).resolve().parents[2] / "shared" / "datasets").resolve()
needs_real = pytest.mark.skipif(
    not REAL.is_dir(), reason=f"real datasets not found at {REAL}; set PHYSNN_DATA to them"
)
MNIST_TEST = ("mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz")


def _copy(relpath: str, root: Path) -> Path:
    dest = root / relpath
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REAL / relpath, dest)
    return dest


# --- data directory, missing files, checksums -------------------------------------------


def test_data_dir_resolution_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PHYSNN_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert data_dir() == tmp_path / "env"
    monkeypatch.delenv("PHYSNN_DATA")
    assert data_dir() == tmp_path / "xdg" / "physnn"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_dir() == tmp_path / "home" / ".cache" / "physnn"


def test_missing_file_message_says_what_where_how_and_origin(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(DataNotFoundError) as info:
        load_mnist(tmp_path, split="test")
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert "mnist/t10k-images-idx3-ubyte.gz" in msg
    assert str(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz") in msg
    assert "data_dir argument" in msg and "MNIST" in msg and "download=True" in msg

    monkeypatch.setenv("PHYSNN_DATA", str(tmp_path))
    with pytest.raises(DataNotFoundError, match=r"(?s)vowdata\.dat.*\$PHYSNN_DATA.*hdp-bayes-vowels"):
        load_vowel_formants()
    with pytest.raises(DataNotFoundError, match="fancompute/wavetorch"):
        load_vowel_audio()

    monkeypatch.delenv("PHYSNN_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with pytest.raises(DataNotFoundError, match=r"(?s)default cache dir.*MomeniAli/PhyLL"):
        load_phyll_cavity()


@needs_real
def test_checksum_mismatch_names_file_and_both_hashes(tmp_path: Path) -> None:
    path = _copy("hillenbrand1995/vowdata.dat", tmp_path)
    with open(path, "ab") as f:
        f.write(b"\r\n")
    with pytest.raises(ChecksumError) as info:
        load_hillenbrand_table(tmp_path)
    msg = str(info.value)
    assert str(path) in msg
    assert _registry.SHA256["hillenbrand1995/vowdata.dat"] in msg
    assert _paths.sha256_of(path) in msg
    assert load_hillenbrand_table(tmp_path, verify=False).features.shape == (1668, 15)


@needs_real
def test_wavs_verified_only_against_a_root_manifest(tmp_path: Path) -> None:
    wav = _copy("hillenbrand1995/vowels/m01ae.wav", tmp_path)
    kwargs = {"vowels": ("ae",), "groups": ("m",)}
    assert load_vowel_audio(tmp_path, **kwargs).files == ["m01ae.wav"]  # no manifest: unchecked
    with pytest.raises(DataNotFoundError, match="no recordings of vowel 'ei'"):
        load_vowel_audio(tmp_path, vowels=("ei",), groups=("m",))
    (tmp_path / "SHA256SUMS").write_text("0" * 64 + "  hillenbrand1995/vowels/m01ae.wav\n")
    with pytest.raises(ChecksumError, match="m01ae.wav"):
        load_vowel_audio(tmp_path, **kwargs)
    assert len(load_vowel_audio(tmp_path, verify=False, **kwargs).waves) == 1
    (tmp_path / "SHA256SUMS").unlink()
    (tmp_path / "MANIFEST.tsv").write_text(
        f"path\tsize_bytes\tsha256\tsource\nhillenbrand1995/vowels/m01ae.wav\t1\t{_paths.sha256_of(wav)}\tx\n"
    )
    assert len(load_vowel_audio(tmp_path, **kwargs).waves) == 1


@needs_real
def test_verification_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    load_hillenbrand_table(REAL)
    monkeypatch.setattr(_paths.hashlib, "sha256", None)  # any re-hash would now fail
    load_hillenbrand_table(REAL)


# --- downloads (file:// URLs stand in for the network) ----------------------------------


@needs_real
def test_download_fetches_verifies_and_renames(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for rel in MNIST_TEST:
        monkeypatch.setitem(_registry.URLS, rel, (REAL / rel).as_uri())
    images, labels = load_mnist(tmp_path, split="test", download=True)
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(Path(r).name for r in MNIST_TEST)


@needs_real
def test_download_with_wrong_content_or_url_saves_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rel = "mnist/t10k-labels-idx1-ubyte.gz"
    monkeypatch.setitem(_registry.URLS, rel, (REAL / "fashion-mnist/t10k-labels-idx1-ubyte.gz").as_uri())
    with pytest.raises(ChecksumError, match=_registry.SHA256[rel]):
        _paths.find_file(rel, tmp_path, download=True)
    assert list((tmp_path / "mnist").iterdir()) == []
    monkeypatch.setitem(_registry.URLS, rel, (tmp_path / "nowhere.gz").as_uri())
    with pytest.raises(DataNotFoundError, match="download from .* failed"):
        _paths.find_file(rel, tmp_path, download=True)
    assert list((tmp_path / "mnist").iterdir()) == []


# --- IDX / MNIST ------------------------------------------------------------------------


def test_load_idx_roundtrip_and_corrupt_files(tmp_path: Path) -> None:
    good = np.arange(6, dtype=">i4").reshape(2, 3)
    header = bytes([0, 0, 0x0C, 2]) + np.array([2, 3], ">u4").tobytes()
    (tmp_path / "ok.idx").write_bytes(header + good.tobytes())
    np.testing.assert_array_equal(load_idx(tmp_path / "ok.idx"), good)
    cases = {
        "magic.idx": (b"\x01\x00\x08\x01" + bytes(8), "bad magic"),
        "type.idx": (b"\x00\x00\x07\x01" + bytes(8), "unknown type"),
        "short.idx": (header + good.tobytes()[:-1], "needs 36 bytes, file has 35"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DataFormatError, match=message):
            load_idx(tmp_path / name)
    (tmp_path / "cut.gz").write_bytes(gzip.compress(header + good.tobytes())[:-6])
    with pytest.raises(DataFormatError, match="gzip"):
        load_idx(tmp_path / "cut.gz")


@needs_real
def test_mnist_and_fashion_test_splits() -> None:
    images, labels = load_mnist(REAL, split="test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8 and labels.dtype == np.uint8
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    images, labels = load_mnist(REAL, kind="fashion-mnist", split="test")
    assert images.shape == (10000, 28, 28) and np.bincount(labels).tolist() == [1000] * 10
    with pytest.raises(ConfigurationError, match="kind"):
        load_mnist(REAL, kind="emnist")


# --- Hillenbrand vowels -----------------------------------------------------------------


@needs_real
def test_hillenbrand_table_rows_and_balance() -> None:
    table = load_hillenbrand_table(REAL)
    assert table.features.shape == (1668, 15) and len(set(table.names)) == 1668
    assert {v: table.vowel.count(v) for v in VOWELS} == {v: 139 for v in VOWELS}
    assert [table.talker_group.count(g) for g in "mwbg"] == [540, 576, 324, 228]
    f4 = table.features[:, table.columns.index("F4")]
    assert np.isnan(f4).sum() == 243  # the table's 0 = "not measurable"
    assert np.nanmin(table.features[:, 0]) == 111 and np.nanmax(table.features[:, 0]) == 486


@needs_real
def test_vowel_formants_match_phyll_xlsx() -> None:
    openpyxl = pytest.importorskip("openpyxl")
    sheet = openpyxl.load_workbook(REAL / "phyll" / "Vowel_dataset.xlsx", read_only=True).worksheets[0]
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    xlsx = np.array([r[1:] for r in rows], dtype=np.float64)
    X, y, names = load_vowel_formants(REAL, subset="phyll")
    assert X.shape == (258, 12) == xlsx.shape
    np.testing.assert_array_equal(X, xlsx)  # same values, same order
    assert [names[k] for k in y] == [r[0][3:5] for r in rows]
    full, _, _ = load_vowel_formants(REAL)  # every complete token: the sheet is a subsample
    assert full.shape == (316, 12) and not np.isnan(full).any()
    assert {tuple(r) for r in xlsx} <= {tuple(r) for r in full}


@needs_real
def test_vowel_audio_shapes_rate_and_energy() -> None:
    import soundfile

    audio = load_vowel_audio(REAL, limit=2)
    assert audio.class_names == ("ae", "ei", "iy") and audio.labels.tolist() == [0, 0, 1, 1, 2, 2]
    for wave, name, label in zip(audio.waves, audio.files, audio.labels, strict=True):
        frames = soundfile.info(str(REAL / "hillenbrand1995" / "vowels" / name)).frames
        assert name[3:5] == audio.class_names[label]
        assert wave.dtype == np.float32 and wave.ndim == 1
        assert wave.shape[0] == -(-frames * 10000 // 16000)
        assert np.isclose(np.sum(wave.astype(np.float64) ** 2), 1.0, atol=1e-5)
    raw = load_vowel_audio(REAL, vowels=("iy",), groups=("w",), sample_rate=16000, normalize=None, limit=1)
    assert raw.files == ["w01iy.wav"] and 0.1 < np.max(np.abs(raw.waves[0])) <= 1.0


# --- PhyLL cavity -----------------------------------------------------------------------


@needs_real
def test_phyll_cavity_shapes_and_ranges() -> None:
    x, y = load_phyll_cavity(REAL)
    assert x.shape == y.shape == (10000, 20) and x.dtype == y.dtype == np.float64
    assert 0 < x.min() and x.max() < 1
    assert 0 < y.min() and y.max() < 1.94
    assert not (x == 0).all(axis=1).any()  # the all-zero placeholder row is gone


# --- offline defaults -------------------------------------------------------------------


def test_digits_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = load_digits_offline()
    assert X.shape == (1797, 64) and X.dtype == np.float32 and 0 == X.min() and X.max() == 1
    assert np.bincount(y).min() >= 170
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        load_digits_offline()


def test_synthetic_formants_follow_published_statistics() -> None:
    n = 2000
    X, y, names = synthesize_vowel_formants(n, vowels=("iy", "ah"), group="m", seed=3)
    assert X.shape == (2 * n, 12) and names == ("iy", "ah") and np.bincount(y).tolist() == [n, n]
    for k, vowel in enumerate(names):
        mean, sd = (np.array(v[1:]) for v in HILLENBRAND_STATS["m"][vowel])
        assert np.all(np.abs(X[y == k].mean(axis=0) - mean) < 4 * sd / np.sqrt(n))
        assert np.allclose(X[y == k].std(axis=0), sd, rtol=0.1)
    f1 = [STAT_COLUMNS.index(c) - 1 for c in ("F1", "F1_20")]
    assert np.corrcoef(X[:, f1][y == 0].T)[0, 1] > 0.8  # F1 moves together over time
    again, _, _ = synthesize_vowel_formants(n, vowels=("iy", "ah"), group="m", seed=3)
    np.testing.assert_array_equal(X, again)
    assert not np.array_equal(X, synthesize_vowel_formants(n, vowels=("iy", "ah"), group="m", seed=4)[0])


def test_synthetic_audio_shapes_energy_seed_and_f1_peak() -> None:
    waves, labels, names = synthesize_vowel_audio(4, vowels=("ah", "iy"), groups=("m",), seed=1)
    assert names == ("ah", "iy") and labels.tolist() == [0] * 4 + [1] * 4
    assert all(w.shape == (2500,) and w.dtype == np.float32 for w in waves)
    assert np.allclose([np.sum(w.astype(np.float64) ** 2) for w in waves], 1.0, atol=1e-5)
    again, _, _ = synthesize_vowel_audio(4, vowels=("ah", "iy"), groups=("m",), seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(waves, again, strict=True))
    spectrum = np.mean([np.abs(np.fft.rfft(w, 8192)) ** 2 for w in waves[:4]], axis=0)
    peak_hz = np.fft.rfftfreq(8192, 1 / 10000)[np.argmax(spectrum)]
    f1_hz = HILLENBRAND_STATS["m"]["ah"][0][STAT_COLUMNS.index("F1_50")]
    assert abs(peak_hz - f1_hz) < 150
