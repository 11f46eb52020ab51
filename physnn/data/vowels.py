"""Hillenbrand et al. (1995) American English vowels: formant tables and recordings.

Cite: Hillenbrand, Getty, Clark & Wheeler, J. Acoust. Soc. Am. 97(5), 3099 (1995).
Token names are ``<group><talker><vowel>``, e.g. ``w01ae``: group m/w/b/g = man, woman,
boy, girl. Only the men's and women's recordings are publicly redistributed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from math import gcd
from typing import NamedTuple

import numpy as np

from physnn.data._paths import find_dir, find_file
from physnn.data._registry import origin
from physnn.errors import ConfigurationError, DataFormatError, DataNotFoundError

VOWELS = ("ae", "ah", "aw", "eh", "ei", "er", "ih", "iy", "oa", "oo", "uh", "uw")
PHYLL_VOWELS = ("ae", "ah", "aw", "er", "ih", "iy", "uw")
GROUPS = ("m", "w", "b", "g")
AUDIO_GROUPS = ("m", "w")
AUDIO_SAMPLE_RATE = 16000

_ROW = re.compile(r"^[mwbg]\d\d[a-z]{2}\s")
_WAV = re.compile(r"^([mw])\d\d([a-z]{2})\.wav$")
_COLUMNS = {
    "vowdata.dat": ("duration_ms", "F0", "F1", "F2", "F3", "F4")
    + tuple(f"F{k}_{p}" for p in (20, 50, 80) for k in (1, 2, 3)),
    "bigdata.dat": ("duration_ms", "F0", "F1", "F2", "F3")
    + tuple(f"F{k}_{p}" for p in range(10, 90, 10) for k in (1, 2, 3)),
}
FEATURE_SETS = {
    "formants12": ("F1", "F2", "F3", "F1_20", "F2_20", "F3_20")
    + ("F1_50", "F2_50", "F3_50", "F1_80", "F2_80", "F3_80"),
    "steady3": ("F1", "F2", "F3"),
}
# Talker numbers (women) of the 258 tokens in PhyLL's ``Vowel datasets/Vowel_dataset.xlsx``,
# read from that file; it is a per-vowel subsample of the complete tokens with no rule we
# could find (37 per vowel, 36 for uw), so it is listed here.
PHYLL_TALKERS = {
    "ae": "01 02 03 05 06 07 08 09 10 12 13 14 15 16 17 19 20 21 23 24 "
          "25 27 29 30 31 32 34 35 36 38 41 42 45 46 48 49 50",
    "ah": "01 02 03 05 07 09 10 11 13 14 15 16 17 19 20 22 23 24 25 28 "
          "29 30 31 33 34 35 36 37 38 39 41 42 44 45 46 47 50",
    "aw": "01 02 03 04 06 07 08 10 11 13 14 15 16 17 19 20 21 22 23 25 "
          "28 29 31 32 34 35 36 37 38 39 42 44 45 46 47 48 49",
    "er": "01 02 04 05 07 09 10 11 12 13 14 15 16 17 19 22 23 24 25 26 "
          "27 28 29 31 33 34 35 36 37 38 40 45 46 47 48 49 50",
    "ih": "01 02 03 04 05 06 07 09 10 11 14 15 17 19 20 21 22 23 24 25 "
          "26 27 28 30 31 32 33 34 36 37 40 42 44 45 47 48 50",
    "iy": "01 02 03 04 05 06 07 08 09 10 11 12 13 14 15 16 17 19 21 22 "
          "23 24 27 30 32 33 34 35 36 37 40 41 42 46 48 49 50",
    "uw": "01 05 06 07 09 10 12 13 14 15 16 17 19 20 21 22 23 24 26 27 "
          "28 30 31 32 33 34 37 38 39 40 41 42 44 45 47 48",
}
PHYLL_TOKENS = frozenset(f"w{t}{v}" for v, talkers in PHYLL_TALKERS.items() for t in talkers.split())


@dataclass(frozen=True)
class HillenbrandTable:
    """One Hillenbrand formant table, one row per token (N = 1668).

    ``features`` is float64 ``(N, len(columns))``: duration in ms, F0 and formants in Hz.
    The table's 0 ("not measurable") is returned as NaN.
    """

    names: list[str]
    talker_group: list[str]
    vowel: list[str]
    features: np.ndarray
    columns: tuple[str, ...]


def _check_choice(what: str, given: Sequence[str], allowed: Sequence[str]) -> None:
    bad = [g for g in given if g not in allowed]
    if bad or not given:
        raise ConfigurationError(f"{what} must be a non-empty choice from {tuple(allowed)}, got {tuple(given)}")


def load_hillenbrand_table(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    file: str = "vowdata.dat",
    verify: bool = True,
) -> HillenbrandTable:
    """Parse ``hillenbrand1995/<file>`` (``vowdata.dat`` or ``bigdata.dat``).

    ``vowdata.dat`` columns: duration_ms, F0, F1..F4 at steady state, then F1-F3 at 20, 50
    and 80 % of the vowel (``F1_20`` ... ``F3_80``). ``bigdata.dat``: duration_ms, F0, F1-F3
    steady, then F1-F3 every 10 % from 10 to 80 %. Rows keep the file order (vowel-major,
    then group m, w, b, g, then talker).
    """
    if file not in _COLUMNS:
        raise ConfigurationError(f"load_hillenbrand_table: file must be one of {tuple(_COLUMNS)}, got {file!r}")
    path = find_file(f"hillenbrand1995/{file}", data_dir, verify_checksum=verify)
    columns = _COLUMNS[file]
    names, rows = [], []
    with open(path, encoding="ascii") as f:
        for line in f:
            if _ROW.match(line):
                name, *values = line.split()
                if len(values) != len(columns):
                    raise DataFormatError(f"{path}: row {name} has {len(values)} values, expected {len(columns)}")
                names.append(name)
                rows.append(values)
    features = np.array(rows, dtype=np.float64)
    features[features == 0] = np.nan
    return HillenbrandTable(
        names=names,
        talker_group=[n[0] for n in names],
        vowel=[n[3:5] for n in names],
        features=features,
        columns=columns,
    )


def load_vowel_formants(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    vowels: Sequence[str] = PHYLL_VOWELS,
    groups: Sequence[str] = ("w",),
    features: str = "formants12",
    subset: str | None = None,
    verify: bool = True,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Formant feature vectors from ``vowdata.dat``, one row per token.

    Returns ``(X, y, class_names)``: ``X`` float64 ``(n, 12)`` in Hz for ``"formants12"``
    (F1-F3 at steady state, 20 %, 50 %, 80 %; ``"steady3"`` gives F1-F3 steady only),
    ``y`` int64 ``(n,)`` indexing ``class_names == tuple(vowels)``. Rows are ordered by
    vowel (in ``vowels`` order), then as in the table (group m, w, b, g, then talker).
    Tokens with any unmeasured (0) value among the chosen features are dropped: for women
    and the 7 PhyLL vowels that leaves 316 of 336 tokens.

    ``subset="phyll"`` keeps only the 258 tokens of PhyLL's ``Vowel_dataset.xlsx`` (women,
    vowels ae ah aw er ih iy uw); with the defaults the result equals that sheet, row for row.
    """
    _check_choice("vowels", vowels, VOWELS)
    _check_choice("groups", groups, GROUPS)
    if features not in FEATURE_SETS:
        raise ConfigurationError(f"features must be one of {tuple(FEATURE_SETS)}, got {features!r}")
    if subset not in (None, "phyll"):
        raise ConfigurationError(f"subset must be None or 'phyll', got {subset!r}")
    table = load_hillenbrand_table(data_dir, verify=verify)
    formants = table.features[:, [table.columns.index(c) for c in FEATURE_SETS[features]]]
    keep = np.isin(table.talker_group, groups) & ~np.isnan(formants).any(axis=1)
    if subset == "phyll":
        keep &= np.isin(table.names, sorted(PHYLL_TOKENS))
    vowel = np.array(table.vowel)
    rows = [np.flatnonzero(keep & (vowel == v)) for v in vowels]
    y = np.repeat(np.arange(len(vowels), dtype=np.int64), [len(r) for r in rows])
    return formants[np.concatenate(rows)], y, tuple(vowels)


class VowelAudio(NamedTuple):
    """Vowel recordings: ``waves[i]`` (float32, 1-D) has label ``labels[i]`` and came from ``files[i]``."""

    waves: list[np.ndarray]
    labels: np.ndarray
    class_names: tuple[str, ...]
    files: list[str]


def _normalize(x: np.ndarray, mode: str | None) -> np.ndarray:
    if mode == "energy":
        return x / np.sqrt(np.sum(x.astype(np.float64) ** 2))
    if mode == "peak":
        return x / np.max(np.abs(x))
    return x


def load_vowel_audio(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    vowels: Sequence[str] = ("ae", "ei", "iy"),
    groups: Sequence[str] = AUDIO_GROUPS,
    sample_rate: int = 10000,
    normalize: str | None = "energy",
    limit: int | None = None,
    verify: bool = True,
) -> VowelAudio:
    """Whole /hVd/ word recordings from ``hillenbrand1995/vowels/*.wav``.

    Each file (16 kHz, 0.33-0.86 s) is read with soundfile, resampled to ``sample_rate``
    Hz with ``scipy.signal.resample_poly`` and scaled: ``normalize="energy"`` gives
    ``sum(x**2) == 1``, ``"peak"`` gives ``max|x| == 1``, None keeps full-scale [-1, 1).
    Files are ordered by vowel (in ``vowels`` order), then by name (so men before women);
    ``limit`` keeps at most the first that many files per vowel. Only men ("m") and women ("w")
    have recordings (93 per vowel).
    A file is checksummed only if the data-dir root has a ``SHA256SUMS`` / ``MANIFEST.tsv``.
    """
    _check_choice("vowels", vowels, VOWELS)
    _check_choice("groups", groups, AUDIO_GROUPS)
    if normalize not in ("energy", "peak", None):
        raise ConfigurationError(f"normalize must be 'energy', 'peak' or None, got {normalize!r}")
    folder = find_dir("hillenbrand1995/vowels", data_dir)
    import soundfile
    from scipy.signal import resample_poly

    listing = sorted(
        (m.group(2), m.group(0)) for m in map(_WAV.match, os.listdir(folder)) if m and m.group(1) in groups
    )
    waves, labels, files = [], [], []
    for label, vowel in enumerate(vowels):
        chosen = [name for v, name in listing if v == vowel][:limit]
        if not chosen:
            raise DataNotFoundError(
                f"no recordings of vowel {vowel!r} for groups {tuple(groups)} in {folder}; "
                f"get them from {origin('hillenbrand1995/vowels')}"
            )
        for name in chosen:
            path = find_file(f"hillenbrand1995/vowels/{name}", data_dir, verify_checksum=verify)
            x, rate = soundfile.read(path, dtype="float32", always_2d=False)
            if rate != sample_rate:
                g = gcd(sample_rate, rate)
                x = resample_poly(x, sample_rate // g, rate // g).astype(np.float32)
            waves.append(_normalize(x, normalize).astype(np.float32))
            labels.append(label)
            files.append(name)
    return VowelAudio(waves, np.array(labels, dtype=np.int64), tuple(vowels), files)
