"""Datasets for physnn: loaders for real data files and offline defaults.

Real data lives in a data directory chosen by :func:`data_dir` (argument, else
``$PHYSNN_DATA``, else ``~/.cache/physnn``) with the layout of ``shared/datasets``.
Loaders verify SHA-256 checksums and raise :class:`physnn.errors.DataNotFoundError`
(saying where to get a file) or :class:`physnn.errors.ChecksumError`.
:mod:`physnn.data.synthetic` needs no files at all.
"""

from physnn.data._paths import data_dir
from physnn.data.idx import load_idx, load_mnist
from physnn.data.inventory import describe_data_dir
from physnn.data.phyll import load_phyll_cavity
from physnn.data.record import Record, load_record
from physnn.data.synthetic import (
    load_digits_offline,
    synthesize_vowel_audio,
    synthesize_vowel_formants,
)
from physnn.data.vowels import (
    PHYLL_VOWELS,
    VOWELS,
    HillenbrandTable,
    VowelAudio,
    load_hillenbrand_table,
    load_vowel_audio,
    load_vowel_formants,
)

__all__ = [
    "PHYLL_VOWELS",
    "VOWELS",
    "HillenbrandTable",
    "Record",
    "VowelAudio",
    "data_dir",
    "describe_data_dir",
    "load_digits_offline",
    "load_hillenbrand_table",
    "load_idx",
    "load_mnist",
    "load_phyll_cavity",
    "load_record",
    "load_vowel_audio",
    "load_vowel_formants",
    "synthesize_vowel_audio",
    "synthesize_vowel_formants",
]
