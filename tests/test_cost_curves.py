"""``mr2ct bench curves``: the growth slopes and the usage errors (fast); a toy run writing the CSV and PNG (slow)."""

from __future__ import annotations

import csv

import pytest

from mr2ct.benchmarks.cost_curves import main, slope


def test_slope_of_power_laws():
    xs = [1.0, 2.0, 4.0, 8.0]
    assert slope(xs, [3 * x for x in xs]) == pytest.approx(1.0)
    assert slope(xs, [x**2 for x in xs]) == pytest.approx(2.0)
    assert slope(xs, [5.0] * 4) == pytest.approx(0.0)


def test_usage_errors(capsys):
    with pytest.raises(SystemExit):
        main(["--depths", "2", "8"])
    assert "must be >= 4" in capsys.readouterr().err


@pytest.mark.slow
def test_toy_curves_write_csv_and_png(tmp_path):
    out = tmp_path / "curves"
    args = ["--output", str(out), "--depths", "4", "8", "--sizes", "8", "16", "--ngfs", "4", "8"]
    rows = main(args + ["--inference", "8", "16", "--ngf", "4", "--blocks", "1", "--warmup", "0", "--repeats", "1"])
    assert len(rows) == 8 and out.with_suffix(".png").stat().st_size > 10_000
    assert len(list(csv.DictReader(out.with_suffix(".csv").open()))) == 8
