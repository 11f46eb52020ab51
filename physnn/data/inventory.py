"""What a data directory holds: ``physnn data`` prints :func:`describe_data_dir`."""

from __future__ import annotations

from pathlib import Path

from physnn.data import _paths, _registry

#: dataset folder -> what it is for
DATASETS = {
    "hillenbrand1995": "Hillenbrand et al. (1995) vowel tables (+ vowels/*.wav recordings)",
    "mnist": "MNIST IDX files",
    "fashion-mnist": "Fashion-MNIST IDX files",
    "phyll": "PhyLL acoustic-cavity measurements and vowel subset",
}


def describe_data_dir(root: Path) -> str:
    """A few lines: the data dir, how it was chosen, and per dataset which known files are present.

    Presence only: checksums are verified when a loader reads a file.
    """
    chosen, how = _paths._choose(root)
    lines = [f"data dir: {chosen} ({how})"]
    if not chosen.is_dir():
        lines.append("  (does not exist: loaders will say which file to put where)")
    for folder, what in DATASETS.items():
        known = sorted(p for p in _registry.SHA256 if p.startswith(folder + "/"))
        present = [p for p in known if (chosen / p).is_file()]
        line = f"  {folder:15s} {len(present)}/{len(known)} files  {what}"
        if folder == "hillenbrand1995":
            line += f"; {len(list((chosen / folder / 'vowels').glob('*.wav')))} recordings"
        missing = [p for p in known if p not in present]
        if missing and present:
            line += f"\n      missing: {', '.join(missing)}"
        lines.append(line)
    return "\n".join(lines)
