"""``physnn demo``: trained by physnn.training.fit over seeds, honest table, a lesson drawn from the numbers."""

import re
import statistics

import pytest

from physnn.demo import PLANS, Outcome, lesson, run_demo
from physnn.errors import ConfigurationError


def test_demo_tabulates_mean_and_std_over_seeds_and_states_its_lesson(tmp_path, capsys):
    epochs = 2
    rows = run_demo(out=tmp_path, epochs=epochs, seeds=2)
    out = capsys.readouterr().out
    by_method = {r["method"]: r for r in rows}
    assert list(by_method) == [p.label for p in PLANS]
    for plan in PLANS:
        r = by_method[plan.label]
        assert len(r["in silico"]) == 2 and len(r["on hardware"]) == (2 if plan.physical else 0)
    # Cost accounting from fit: in-silico backprop never drives the hardware, physics-aware once per full-batch epoch.
    assert by_method["backprop in silico"]["hardware calls"] == [0, 0]
    assert by_method["physics-aware"]["hardware calls"] == [epochs, epochs]

    table = (tmp_path / "results.md").read_text()
    assert "test accuracy in silico (on the twin)" in table and "test accuracy deployed on the hardware" in table
    assert "mean ± std over seeds 0, 1" in table
    for r in rows:
        line = next(row for row in table.splitlines() if row.startswith(f"| {r['method']} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        expected = [r["in silico"], r["on hardware"]]
        for cell, values in zip(cells[2:4], expected):
            if not values:
                assert cell == "n/a (no physics)"
                continue
            mean, std = map(float, re.fullmatch(r"([\d.]+) ± ([\d.]+) %", cell).groups())
            assert abs(mean - 100 * statistics.mean(values)) < 0.051
            assert abs(std - 100 * statistics.stdev(values)) < 0.051
    silico = by_method["backprop in silico"]
    deployed = f"{100 * statistics.mean(silico['on hardware']):.0f} %"
    lesson_line = next(line for line in table.splitlines() if line.startswith("Lesson: "))
    assert deployed in lesson_line and lesson_line in out
    assert (tmp_path / "training.png").stat().st_size > 10_000


def _outcomes(hardware: dict[str, list[float]]) -> list[Outcome]:
    """Outcomes with the given per-seed hardware accuracies (fractions); in silico fixed at 0.97."""
    outcomes = []
    for plan in PLANS:
        o = Outcome(plan, in_silico=[0.97, 0.97, 0.97])
        if plan.physical:
            o.on_hardware = hardware[plan.label]
        outcomes.append(o)
    return outcomes


def test_lesson_follows_the_numbers():
    gap = _outcomes({"backprop in silico": [0.76, 0.74, 0.78], "physics-aware": [0.95, 0.94, 0.96],
                     "zeroth-order (SPSA)": [0.97, 0.96, 0.98], "readout only, physics frozen": [0.93, 0.92, 0.94]})
    text = lesson(gap)
    assert "97 % on its twin but only 76 % deployed" in text and "reach 93-97 %" in text
    assert "does not transfer" in text
    close = _outcomes({"backprop in silico": [0.94, 0.95, 0.93], "physics-aware": [0.95, 0.94, 0.96],
                       "zeroth-order (SPSA)": [0.96, 0.95, 0.97], "readout only, physics frozen": [0.93, 0.92, 0.94]})
    text = lesson(close)
    assert "transfers to the hardware at 94 %" in text and "does not transfer" not in text


def test_demo_refuses_zero_seeds(tmp_path):
    with pytest.raises(ConfigurationError, match="run_demo needs seeds >= 1, got 0"):
        run_demo(out=tmp_path, seeds=0)
