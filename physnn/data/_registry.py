"""What physnn knows about each data file: SHA-256, download URL and public origin.

Paths are relative to the data directory and use ``/``. The hashes were taken
from ``shared/datasets/MANIFEST.tsv`` / ``SHA256SUMS``. The 1116 Hillenbrand
``.wav`` files have no embedded hash: they are verified only against a
``SHA256SUMS`` or ``MANIFEST.tsv`` in the data directory root (see
:mod:`physnn.data._paths`).

``URLS`` is a plain module-level dict so tests (or a user behind a mirror) can
override where ``download=True`` fetches from.
"""

from __future__ import annotations

SHA256: dict[str, str] = {
    "hillenbrand1995/bigdata.dat": "cebc484484c100cdd67dd191ad33dbb4ed2e8d59e11cc8a9dc23e2df2ef23dad",
    "hillenbrand1995/iddata.dat": "52f48f4a951941d486c7b59afbe57a6f4fb5b3f0bbcd9cace8080d3da20d1856",
    "hillenbrand1995/misid.dat": "37e762f948d5a96c6da590e8a35acfe549d1972c633a2df838a3c890581bbb1f",
    "hillenbrand1995/readme.txt": "c499159d8b7a4eb1dae55607dd2b3569891c17feb6f36eb110f204b5a62ccdc4",
    "hillenbrand1995/timedata.dat": "466b3ae1c02d1e8507da6146b1a019a2227646488cab4605c1b00437053bd250",
    "hillenbrand1995/vowdata.dat": "05a4a69e2c6b0f444077245b1427d12bc86f8d7a32ae7a4b63f7e06e5712e4b1",
    "hillenbrand1995/vowdata.ds": "8d9c75980d2b0c1cd64b928c9c13de519eafffc66d8c1ac64a9b0fc01af20d14",
    "mnist/train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "mnist/train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "mnist/t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "mnist/t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    "fashion-mnist/train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "fashion-mnist/train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "fashion-mnist/t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "fashion-mnist/t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    "phyll/acoustic_x_data.csv": "348d6952fc328325da6070b6ff44ff3dc960b695e7bd08ef7389e64d9cf21f35",
    "phyll/acoustic_y_data.csv": "03c83be26aa1e56456e26e0c9e86b548906dbc0631c2e9300545f271c001648e",
    "phyll/Vowel_dataset.xlsx": "d492d33fcb2444daea663e7c4909dbcd2ad51fd479c97117a2c1f01790b70768",
}

_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # torchvision's mirror
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"  # upstream README
_PHYLL_URL = (
    "https://raw.githubusercontent.com/MomeniAli/PhyLL/e10480b47e1349c54b42aa659314276b3c24d92c/"
)
_IDX_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

URLS: dict[str, str] = {
    **{f"mnist/{name}": _MNIST_URL + name for name in _IDX_NAMES},
    **{f"fashion-mnist/{name}": _FASHION_URL + name for name in _IDX_NAMES},
    "phyll/acoustic_x_data.csv": _PHYLL_URL + "Experimental%20Data/Acoustic/x_data.csv",
    "phyll/acoustic_y_data.csv": _PHYLL_URL + "Experimental%20Data/Acoustic/y_data.csv",
    "phyll/Vowel_dataset.xlsx": _PHYLL_URL + "Vowel%20datasets/Vowel_dataset.xlsx",
}

# Keyed by folder; the deepest folder holding the file wins.
ORIGINS: dict[str, str] = {
    "hillenbrand1995/vowels": (
        "the Hillenbrand et al. (1995) recordings (men and women, 16 kHz) as redistributed in "
        "github.com/fancompute/wavetorch, folder data/vowels (commit 927ad02d)"
    ),
    "hillenbrand1995": (
        "the Hillenbrand et al. (1995) measurement tables, e.g. "
        "github.com/kleinschmidt/hdp-bayes-vowels, folder hillenbrand-data (commit 0787a1ab)"
    ),
    "mnist": f"MNIST (LeCun, Cortes & Burges), original .gz files, e.g. {_MNIST_URL}",
    "fashion-mnist": (
        "Fashion-MNIST, github.com/zalandoresearch/fashion-mnist (folder data/fashion, "
        f"or {_FASHION_URL})"
    ),
    "phyll": (
        "github.com/MomeniAli/PhyLL: 'Experimental Data/Acoustic/x_data.csv' and 'y_data.csv' "
        "(saved as acoustic_x_data.csv / acoustic_y_data.csv), 'Vowel datasets/Vowel_dataset.xlsx'"
    ),
}


def origin(relpath: str) -> str:
    """Where a user can get ``relpath`` (a sentence), or a generic hint."""
    prefixes = [p for p in ORIGINS if relpath == p or relpath.startswith(p + "/")]
    if not prefixes:
        return "the dataset's public source"
    return ORIGINS[max(prefixes, key=len)]
