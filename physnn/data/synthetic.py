"""Offline datasets that need no data files: sklearn's digits and synthetic vowels.

The synthetic vowels follow Hillenbrand et al. (1995), J. Acoust. Soc. Am. 97(5), 3099:
per-vowel Gaussian formant statistics of its ``vowdata.dat`` (embedded below), and a
source-filter synthesizer driven by sampled tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np

from physnn.data.vowels import PHYLL_VOWELS
from physnn.errors import ConfigurationError

# Per group and vowel: (means, SDs) in Hz of the 13 features of STAT_COLUMNS, each over the
# tokens where that value was measured (non-zero), SD with ddof=1. Computed once from
# hillenbrand1995/vowdata.dat (sha256 05a4a69e...); the steady-state F0-F3 values equal the
# published means/SDs of vowdata.ds. Groups: m = 45 men, w = 48 women, c = 46 children
# (boys and girls pooled, as in vowdata.ds).
STAT_COLUMNS = ("F0", "F1", "F2", "F3", "F1_20", "F2_20", "F3_20")
STAT_COLUMNS += ("F1_50", "F2_50", "F3_50", "F1_80", "F2_80", "F3_80")
HILLENBRAND_STATS: dict[str, dict[str, tuple[tuple[float, ...], tuple[float, ...]]]] = {
    "m": {
        "ae": ((125.8, 591.4, 1930.2, 2595.4, 591.7, 1923.2, 2597.3, 613.0, 1863.1, 2565.8, 632.1, 1720.4, 2597.9),
               (19.6, 41.9, 132.8, 137.3, 41.8, 122.8, 135.7, 42.6, 118.5, 148.4, 51.7, 104.4, 130.2)),
        "ah": ((126.6, 756.5, 1308.9, 2534.9, 754.1, 1303.8, 2527.8, 756.9, 1326.3, 2523.3, 705.6, 1460.6, 2537.3),
               (20.2, 62.3, 111.0, 149.0, 63.4, 121.2, 155.7, 69.0, 116.4, 158.9, 69.2, 112.8, 146.2)),
        "aw": ((125.3, 656.0, 1023.2, 2521.2, 654.4, 1019.9, 2516.2, 670.5, 1046.4, 2508.7, 658.0, 1265.0, 2491.8),
               (21.0, 33.6, 65.5, 179.5, 35.1, 65.0, 177.0, 46.2, 66.2, 172.0, 52.9, 149.9, 148.3)),
        "eh": ((126.9, 587.9, 1802.7, 2604.0, 584.2, 1817.3, 2603.2, 592.4, 1773.8, 2602.1, 560.8, 1745.1, 2644.6),
               (20.1, 40.9, 116.6, 138.5, 38.8, 133.4, 136.6, 37.7, 111.0, 130.2, 34.3, 94.6, 110.9)),
        "ei": ((129.5, 476.1, 2089.9, 2691.9, 478.8, 2089.0, 2698.5, 437.2, 2180.6, 2727.0, 399.6, 2229.2, 2741.7),
               (20.6, 41.0, 139.6, 155.2, 30.3, 119.7, 136.6, 29.8, 119.3, 151.5, 31.5, 123.7, 158.9)),
        "er": ((130.6, 474.9, 1379.1, 1710.7, 484.7, 1371.3, 1720.4, 460.2, 1405.8, 1703.9, 442.3, 1484.0, 1752.3),
               (20.4, 28.9, 78.1, 108.0, 28.1, 77.5, 103.8, 29.1, 73.9, 88.4, 26.7, 74.0, 103.1)),
        "ih": ((135.6, 429.4, 2033.9, 2686.9, 433.8, 2032.3, 2683.5, 458.8, 1940.9, 2641.4, 466.5, 1841.1, 2661.7),
               (21.7, 31.3, 121.9, 129.3, 30.6, 118.9, 131.8, 33.5, 115.8, 116.6, 32.3, 109.3, 111.2)),
        "iy": ((138.6, 342.7, 2322.8, 3000.7, 346.4, 2311.6, 3009.7, 340.0, 2338.2, 2993.7, 342.9, 2317.4, 2946.6),
               (25.7, 28.2, 136.3, 201.1, 30.6, 132.5, 197.1, 28.8, 135.4, 210.0, 31.7, 120.5, 212.3)),
        "oa": ((129.8, 497.7, 910.4, 2459.2, 511.1, 936.1, 2454.9, 464.7, 865.8, 2478.7, 434.6, 897.5, 2447.9),
               (20.1, 42.6, 98.1, 143.9, 31.7, 75.1, 147.4, 29.3, 76.5, 144.5, 27.7, 105.8, 142.1)),
        "oo": ((133.3, 469.3, 1122.8, 2434.7, 467.5, 1121.6, 2439.9, 483.4, 1208.5, 2438.3, 483.0, 1489.9, 2445.2),
               (21.1, 28.2, 97.3, 127.3, 27.8, 94.9, 131.2, 26.9, 105.2, 120.4, 31.7, 90.6, 133.5)),
        "uh": ((129.0, 621.4, 1181.3, 2547.6, 622.2, 1181.3, 2547.7, 617.9, 1243.1, 2548.5, 573.9, 1493.3, 2549.8),
               (20.1, 30.0, 86.9, 142.4, 30.8, 86.3, 140.0, 31.2, 88.9, 134.5, 32.5, 89.0, 123.5)),
        "uw": ((143.6, 379.7, 992.2, 2355.3, 384.8, 1015.0, 2346.1, 374.7, 971.0, 2359.0, 368.5, 1027.8, 2337.6),
               (27.0, 33.3, 113.3, 133.5, 29.4, 116.0, 130.7, 31.6, 102.2, 138.6, 31.7, 105.6, 133.9)),
    },
    "w": {
        "ae": ((214.2, 675.7, 2334.8, 2972.7, 676.5, 2335.3, 2960.0, 756.1, 2139.9, 2902.7, 807.5, 1924.2, 2902.9),
               (20.6, 69.3, 158.7, 200.0, 65.6, 154.8, 199.3, 65.0, 155.9, 204.8, 74.1, 126.5, 210.9)),
        "ah": ((212.3, 921.1, 1525.8, 2831.9, 929.8, 1521.4, 2832.0, 918.9, 1558.3, 2839.7, 853.0, 1734.9, 2864.8),
               (22.2, 96.7, 125.0, 176.6, 95.5, 132.4, 193.6, 86.3, 128.2, 180.5, 77.6, 129.8, 175.5)),
        "aw": ((214.0, 804.3, 1188.3, 2824.4, 804.1, 1179.6, 2824.8, 817.5, 1260.8, 2835.7, 811.8, 1575.9, 2828.2),
               (20.2, 74.6, 128.9, 212.2, 83.3, 136.5, 228.1, 68.0, 135.1, 216.8, 69.1, 151.7, 177.0)),
        "eh": ((213.0, 727.1, 2062.7, 2952.8, 727.6, 2089.1, 2956.2, 728.4, 2031.7, 2955.7, 671.9, 2038.3, 2994.5),
               (19.2, 73.7, 142.9, 189.2, 72.9, 131.6, 179.6, 61.1, 128.2, 193.1, 51.1, 129.4, 213.4)),
        "ei": ((219.6, 535.5, 2525.6, 3049.9, 534.1, 2514.3, 3053.3, 476.4, 2611.4, 3042.7, 446.9, 2692.8, 3075.8),
               (22.6, 63.0, 154.5, 181.3, 55.4, 145.0, 183.4, 41.5, 173.8, 169.8, 42.4, 174.7, 168.9)),
        "er": ((217.9, 524.0, 1588.2, 1929.8, 536.0, 1585.9, 1950.0, 511.0, 1594.6, 1933.2, 495.3, 1690.0, 2008.8),
               (25.3, 45.3, 125.9, 131.3, 47.2, 121.5, 154.2, 43.3, 124.1, 134.0, 43.4, 122.5, 139.3)),
        "ih": ((224.7, 484.3, 2369.1, 3057.1, 482.2, 2377.8, 3050.5, 520.7, 2267.8, 3019.6, 532.9, 2167.0, 3040.2),
               (20.7, 34.4, 149.4, 190.1, 34.3, 149.6, 184.4, 42.2, 135.5, 193.2, 39.9, 136.1, 189.9)),
        "iy": ((227.3, 437.2, 2761.3, 3372.8, 446.2, 2755.3, 3381.2, 436.1, 2766.9, 3368.1, 429.2, 2759.8, 3322.9),
               (24.5, 40.6, 147.4, 237.2, 40.3, 154.5, 242.0, 40.3, 146.6, 249.4, 48.1, 139.5, 257.4)),
        "oa": ((217.7, 555.5, 1035.5, 2828.3, 603.0, 1078.1, 2819.0, 524.6, 1005.6, 2852.6, 471.7, 996.4, 2808.8),
               (22.1, 80.6, 122.6, 187.2, 49.8, 114.3, 189.8, 51.3, 92.9, 180.3, 33.0, 101.4, 188.7)),
        "oo": ((230.0, 518.6, 1228.6, 2829.4, 516.8, 1225.5, 2826.0, 562.0, 1383.2, 2822.1, 567.1, 1752.8, 2819.7),
               (22.0, 41.2, 144.6, 182.8, 39.9, 146.6, 166.9, 40.0, 158.1, 166.5, 44.0, 136.3, 158.7)),
        "uh": ((218.5, 760.2, 1415.7, 2900.9, 761.9, 1401.6, 2893.1, 751.5, 1510.1, 2912.8, 662.8, 1831.0, 2926.2),
               (22.3, 57.6, 115.4, 172.7, 54.7, 123.0, 176.8, 56.1, 137.2, 173.6, 69.5, 123.7, 179.0)),
        "uw": ((235.6, 459.7, 1105.5, 2735.4, 465.0, 1139.2, 2737.1, 455.1, 1090.3, 2747.0, 447.0, 1116.0, 2754.6),
               (25.2, 38.7, 205.3, 139.9, 39.8, 198.1, 139.5, 43.2, 174.8, 138.0, 47.0, 147.0, 144.1)),
    },
    "c": {
        "ae": ((229.1, 718.3, 2496.9, 3288.8, 717.4, 2491.5, 3290.0, 786.5, 2340.0, 3166.6, 859.5, 2108.7, 3097.0),
               (23.1, 89.7, 154.3, 240.1, 85.9, 156.4, 239.1, 108.6, 177.1, 223.3, 99.0, 125.3, 193.7)),
        "ah": ((231.0, 991.9, 1688.9, 2937.3, 995.6, 1683.4, 2952.8, 997.7, 1704.8, 2929.9, 907.6, 1886.9, 2987.0),
               (25.3, 129.1, 163.3, 258.5, 122.6, 164.7, 258.6, 118.2, 176.7, 252.7, 81.9, 150.7, 266.6)),
        "aw": ((231.8, 836.4, 1303.1, 2951.0, 837.6, 1292.8, 2942.3, 849.5, 1356.3, 2947.3, 836.1, 1702.7, 2954.5),
               (24.7, 105.5, 160.9, 264.2, 108.0, 148.2, 269.6, 97.3, 158.3, 267.2, 84.6, 191.1, 265.7)),
        "eh": ((229.9, 739.7, 2278.8, 3297.1, 730.8, 2281.6, 3301.1, 745.6, 2261.1, 3284.1, 697.7, 2282.6, 3342.6),
               (23.0, 97.2, 155.6, 202.0, 96.5, 154.2, 196.1, 84.7, 153.5, 204.2, 66.8, 140.5, 207.5)),
        "ei": ((237.9, 565.0, 2649.4, 3322.8, 566.3, 2651.2, 3321.9, 513.2, 2754.3, 3315.2, 486.0, 2822.3, 3361.9),
               (24.0, 60.2, 163.4, 237.8, 54.3, 159.7, 238.2, 50.3, 165.8, 247.7, 46.7, 187.9, 373.8)),
        "er": ((237.0, 586.3, 1721.0, 2154.3, 589.1, 1711.8, 2179.8, 577.1, 1734.0, 2129.6, 542.6, 1814.1, 2181.6),
               (25.2, 55.5, 130.1, 190.8, 52.2, 141.8, 188.0, 53.2, 146.9, 190.1, 51.9, 156.4, 188.6)),
        "ih": ((240.4, 513.2, 2556.5, 3408.6, 509.4, 2552.8, 3391.0, 547.9, 2476.1, 3375.5, 561.8, 2412.7, 3396.2),
               (23.6, 38.3, 160.6, 196.3, 37.8, 163.3, 206.5, 54.0, 151.7, 216.1, 51.5, 143.6, 217.3)),
        "iy": ((246.1, 452.2, 3081.7, 3702.5, 450.7, 3067.9, 3700.2, 454.2, 3089.0, 3678.7, 453.4, 3060.2, 3630.3),
               (26.3, 44.8, 191.3, 286.7, 49.9, 196.9, 311.2, 38.4, 170.3, 315.7, 41.4, 160.3, 342.7)),
        "oa": ((238.4, 598.9, 1140.0, 3005.7, 628.9, 1174.2, 3002.2, 577.9, 1094.6, 3016.4, 522.3, 1110.6, 3028.0),
               (25.9, 65.3, 158.3, 202.5, 54.2, 153.7, 207.1, 50.4, 134.2, 201.9, 48.8, 159.3, 199.5)),
        "oo": ((242.1, 570.7, 1505.6, 3076.0, 569.5, 1501.4, 3080.2, 596.2, 1623.9, 3066.3, 597.6, 1953.9, 3096.8),
               (25.3, 53.8, 180.0, 214.2, 52.5, 181.6, 211.7, 52.9, 169.8, 194.2, 55.8, 177.8, 203.8)),
        "uh": ((233.7, 738.0, 1538.4, 3126.0, 741.2, 1542.2, 3126.0, 732.2, 1650.4, 3110.2, 672.8, 1961.0, 3156.8),
               (24.0, 89.1, 134.4, 209.5, 88.9, 135.5, 217.1, 72.0, 150.6, 217.6, 65.8, 178.6, 217.3)),
        "uw": ((246.6, 492.7, 1403.9, 2992.2, 495.2, 1432.6, 3001.2, 487.4, 1374.0, 2984.0, 485.8, 1389.3, 2982.9),
               (30.0, 44.8, 334.6, 209.3, 43.5, 325.7, 197.1, 47.3, 318.0, 213.4, 46.8, 277.2, 200.8)),
    },
}
# Pooled within-vowel correlation of the 13 STAT_COLUMNS (z-scored per group and vowel, then
# pooled over the 1597 tokens of vowdata.dat with all 13 values measured), rounded to 2
# decimals (still positive definite). It makes a token's F1 at steady state, 20/50/80 %
# move together as in the real table instead of being drawn independently.
WITHIN_VOWEL_CORR = (
    (1.00, 0.24, 0.10, 0.14, 0.21, 0.09, 0.14, 0.23, 0.11, 0.15, 0.27, 0.15, 0.16),
    (0.24, 1.00, 0.15, 0.16, 0.89, 0.15, 0.17, 0.76, 0.19, 0.17, 0.51, 0.22, 0.20),
    (0.10, 0.15, 1.00, 0.34, 0.16, 0.94, 0.33, 0.14, 0.86, 0.33, 0.16, 0.65, 0.33),
    (0.14, 0.16, 0.34, 1.00, 0.17, 0.34, 0.96, 0.18, 0.35, 0.94, 0.19, 0.37, 0.81),
    (0.21, 0.89, 0.16, 0.17, 1.00, 0.16, 0.17, 0.74, 0.19, 0.18, 0.49, 0.23, 0.22),
    (0.09, 0.15, 0.94, 0.34, 0.16, 1.00, 0.35, 0.13, 0.87, 0.33, 0.15, 0.66, 0.33),
    (0.14, 0.17, 0.33, 0.96, 0.17, 0.35, 1.00, 0.18, 0.35, 0.92, 0.20, 0.37, 0.80),
    (0.23, 0.76, 0.14, 0.18, 0.74, 0.13, 0.18, 1.00, 0.14, 0.17, 0.70, 0.20, 0.21),
    (0.11, 0.19, 0.86, 0.35, 0.19, 0.87, 0.35, 0.14, 1.00, 0.36, 0.13, 0.79, 0.37),
    (0.15, 0.17, 0.33, 0.94, 0.18, 0.33, 0.92, 0.17, 0.36, 1.00, 0.18, 0.39, 0.87),
    (0.27, 0.51, 0.16, 0.19, 0.49, 0.15, 0.20, 0.70, 0.13, 0.18, 1.00, 0.13, 0.17),
    (0.15, 0.22, 0.65, 0.37, 0.23, 0.66, 0.37, 0.20, 0.79, 0.39, 0.13, 1.00, 0.43),
    (0.16, 0.20, 0.33, 0.81, 0.22, 0.33, 0.80, 0.21, 0.37, 0.87, 0.17, 0.43, 1.00),
)

BANDWIDTHS_HZ = (90.0, 110.0, 170.0)  # F1-F3 resonator bandwidths
GLOTTAL_BANDWIDTH_HZ = 100.0  # 0 Hz resonator shaping the pulse train (about -12 dB/octave)
JITTER = 0.01  # relative SD of each glottal period
RAMP_S = 0.02  # raised-cosine onset/offset
BLOCK_S = 0.005  # formant tracks are updated every 5 ms


def load_digits_offline() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits: ``X`` float32 ``(1797, 64)`` in [0, 1], ``y`` int64 0..9."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError("load_digits_offline needs scikit-learn: pip install scikit-learn") from err
    digits = load_digits()
    return (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)


@cache
def _cholesky() -> np.ndarray:
    return np.linalg.cholesky(np.array(WITHIN_VOWEL_CORR))


def _sample_tokens(rng: np.random.Generator, group: str, vowel: str, n: int) -> np.ndarray:
    """``(n, 13)`` tokens in Hz, columns :data:`STAT_COLUMNS`, correlated as in the table."""
    mean, sd = (np.array(v) for v in HILLENBRAND_STATS[group][vowel])
    z = rng.standard_normal((n, len(STAT_COLUMNS))) @ _cholesky().T
    return mean + sd * z


def _check(group_or_groups: Sequence[str], vowels: Sequence[str], n_per_class: int) -> None:
    bad = [g for g in group_or_groups if g not in HILLENBRAND_STATS]
    if bad or not group_or_groups:
        raise ConfigurationError(f"group must be among {tuple(HILLENBRAND_STATS)}, got {tuple(group_or_groups)}")
    bad = [v for v in vowels if v not in HILLENBRAND_STATS["m"]]
    if bad or not vowels:
        raise ConfigurationError(f"vowels must be among {tuple(HILLENBRAND_STATS['m'])}, got {tuple(vowels)}")
    if n_per_class < 1:
        raise ConfigurationError(f"n_per_class must be >= 1, got {n_per_class}")


def synthesize_vowel_formants(
    n_per_class: int,
    *,
    vowels: Sequence[str] = PHYLL_VOWELS,
    group: str = "w",
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Synthetic Hillenbrand-like formant vectors, drawn from the embedded Gaussians.

    Returns ``(X, y, class_names)``: ``X`` float64 ``(n_per_class * len(vowels), 12)`` in Hz
    with the columns of ``load_vowel_formants`` (F1-F3 at steady state, 20, 50, 80 %),
    ``y`` int64 class indices (class-major order), ``class_names == tuple(vowels)``.
    ``group`` is "m", "w" or "c" (children). Same ``seed``, same output.
    """
    _check((group,), vowels, n_per_class)
    rng = np.random.default_rng(seed)
    X = np.concatenate([_sample_tokens(rng, group, v, n_per_class)[:, 1:] for v in vowels])
    y = np.repeat(np.arange(len(vowels), dtype=np.int64), n_per_class)
    return X, y, tuple(vowels)


def _resonator(freq_hz: float, bw_hz: float, fs: float) -> tuple[float, float, float]:
    """Klatt (1980) resonator ``y[n] = a x[n] + b y[n-1] + c y[n-2]`` with unit gain at 0 Hz."""
    c = -np.exp(-2 * np.pi * bw_hz / fs)
    b = 2 * np.exp(-np.pi * bw_hz / fs) * np.cos(2 * np.pi * freq_hz / fs)
    return 1 - b - c, b, c


def _resonate(x: np.ndarray, freq_hz: np.ndarray, bw_hz: float, fs: float) -> np.ndarray:
    """Filter ``x`` by a resonator whose frequency follows ``freq_hz`` (one value per sample)."""
    from scipy.signal import lfilter

    y = np.zeros_like(x)
    y1 = y2 = 0.0  # the last two outputs, carried across blocks
    step = max(1, round(BLOCK_S * fs))
    for start in range(0, len(x), step):
        a, b, c = _resonator(freq_hz[start], bw_hz, fs)
        block, _ = lfilter([a], [1.0, -b, -c], x[start : start + step], zi=[b * y1 + c * y2, c * y1])
        y[start : start + step] = block
        y1, y2 = (block[-1], block[-2]) if len(block) > 1 else (block[-1], y1)
    return y


def _render(token: np.ndarray, rng: np.random.Generator, fs: int, duration: float) -> np.ndarray:
    """Unit-energy float32 waveform of one ``(13,)`` token (columns :data:`STAT_COLUMNS`)."""
    from scipy.signal import lfilter

    n = round(duration * fs)
    f0 = max(token[0], 50.0)
    periods = (1 + JITTER * rng.standard_normal(int(duration * f0 * 1.2) + 2)) / f0
    onsets = np.cumsum(periods) - periods[0]
    source = np.zeros(n)
    np.add.at(source, np.round(onsets[onsets < duration] * fs).astype(int).clip(max=n - 1), 1.0)
    a, b, c = _resonator(0.0, GLOTTAL_BANDWIDTH_HZ, fs)
    x = np.diff(lfilter([a], [1.0, -b, -c], source), prepend=0.0)  # glottal shape, then lip radiation
    knots = np.array([0.2, 0.5, 0.8]) * (n - 1)
    for k, bw in enumerate(BANDWIDTHS_HZ):
        track = np.interp(np.arange(n), knots, token[[4 + k, 7 + k, 10 + k]])
        if track.max() < 0.45 * fs:  # a formant near or above Nyquist would alias: leave it out
            x = _resonate(x, track, bw, fs)
    ramp = min(round(RAMP_S * fs), n // 2)
    window = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    x[:ramp] *= window
    x[n - ramp :] *= window[::-1]
    return (x / np.sqrt(np.sum(x**2))).astype(np.float32)


def synthesize_vowel_audio(
    n_per_class: int,
    *,
    vowels: Sequence[str] = ("ae", "ei", "iy"),
    groups: Sequence[str] = ("m", "w"),
    sample_rate: int = 10000,
    duration: float = 0.25,
    seed: int = 0,
) -> tuple[list[np.ndarray], np.ndarray, tuple[str, ...]]:
    """Source-filter vowels: a stand-in for ``load_vowel_audio`` that needs no files.

    Each token is drawn as in :func:`synthesize_vowel_formants` (groups alternate token by
    token). A glottal pulse train at its F0 (1 % period jitter, -12 dB/octave pulse shape,
    +6 dB/octave lip radiation) drives cascaded second-order resonators at F1-F3 (bandwidths
    90, 110, 170 Hz) whose frequencies glide linearly through the token's 20, 50 and 80 %
    values. Formants at or above 0.45 * ``sample_rate`` are skipped.

    Returns ``(waves, labels, class_names)``: ``waves`` a list of float32 ``(round(duration *
    sample_rate),)`` arrays with ``sum(x**2) == 1`` and 20 ms raised-cosine ramps,
    ``labels`` int64 (class-major order), ``class_names == tuple(vowels)``.
    """
    _check(groups, vowels, n_per_class)
    if duration <= 2 * RAMP_S or sample_rate <= 0:
        raise ConfigurationError(
            f"need duration > {2 * RAMP_S} s and sample_rate > 0, got {duration} s, {sample_rate} Hz"
        )
    rng = np.random.default_rng(seed)
    waves = []
    for vowel in vowels:
        for i in range(n_per_class):
            token = _sample_tokens(rng, groups[i % len(groups)], vowel, 1)[0]
            waves.append(_render(token, rng, sample_rate, duration))
    labels = np.repeat(np.arange(len(vowels), dtype=np.int64), n_per_class)
    return waves, labels, tuple(vowels)
