from __future__ import annotations

import json

import pytest

from mr2ct.networks import PatchGANDiscriminator, ResnetGenerator, count_parameters
from mr2ct.reproduce import TASKS, matched_2d_widths, run_comparison

TINY = {
    "depth": 8,
    "size": [16, 16],
    "ngf": 4,
    "ndf": 4,
    "num_res_blocks": 1,
    "num_digits": 40,
    "num_workers": 0,
    "max_epochs": 1,
    "decay_epochs": 0,
    "epoch_length": 2,
}


def test_matched_widths_equalise_parameter_counts():
    w = matched_2d_widths(1, 16, 16, 2, 16, (28, 28))
    g3 = count_parameters(ResnetGenerator(3, 1, 1, 16, 2))
    g2 = count_parameters(ResnetGenerator(2, 1, 1, w["ngf"], 2))
    assert w["ngf"] > 16 and abs(g2 - g3) / g3 < 0.05
    d3 = count_parameters(PatchGANDiscriminator(3, 1, 16, input_size=(16, 28, 28)))
    assert abs(count_parameters(PatchGANDiscriminator(2, 1, w["ndf"])) - d3) / d3 < 0.05


@pytest.mark.parametrize("task", ["vmnist", "mmnist"])
def test_comparison_writes_tables_with_paper_numbers_and_figure(tmp_path, task):
    overrides = {**TINY, "dataset_dir": str(tmp_path / "data")}
    if task == "mmnist":
        overrides.update(size=[28, 28], digit_size=14)
    results = run_comparison(
        task, ["3d", "sequential"], "quick", tmp_path / "out", eval_videos=10, overrides=overrides, match_params=True
    )
    reference = TASKS[task].reference_row
    assert set(results) == {"3d", "sequential", reference}
    assert results["3d"]["iterations"] == 2 and results["sequential"]["overrides"]["ngf"] > 4
    assert sum(results["3d"]["parameters"].values()) > 0
    table = (tmp_path / "out" / "table.md").read_text(encoding="utf-8")
    paper_value = "27.21 ± 5.27" if task == "vmnist" else "204.36"
    assert paper_value in table and "Preset `quick`, seed 0" in table
    assert (tmp_path / "out" / "figure.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    assert saved["meta"]["held_out_videos"] == 10  # of 12, not a multiple of the batch size
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {
        "table.md",
        "table.csv",
        "results.json",
        "3d",
        "sequential",
    }


def test_gta_comparison_runs_all_four_methods_and_prints_table_4(tmp_path):
    overrides = {
        "depth": 8,
        "size": [16, 32],
        "scene_size": [32, 64],
        "scene_frames": 24,
        "sequences": "001-004",
        "ngf": 4,
        "ndf": 4,
        "num_res_blocks": 1,
        "num_workers": 0,
        "max_epochs": 1,
        "decay_epochs": 0,
        "epoch_length": 2,
        "dataset_dir": str(tmp_path / "data"),
    }
    results = run_comparison(
        "gta",
        ["3d", "random", "sequential", "seq_const"],
        "quick",
        tmp_path / "out",
        eval_videos=None,
        overrides=overrides,
    )
    assert set(results) == {"3d", "random", "sequential", "seq_const", "identity"}
    for method, r in results.items():
        accuracy, _ = r["metrics"]["accuracy_all"]
        assert 0 <= accuracy <= 1, method
    assert results["3d"]["overrides"]["method"] == "3d" and results["seq_const"]["overrides"]["method"] == "seq_const"
    table = (tmp_path / "out" / "table.md").read_text(encoding="utf-8")
    assert "Table 4" in table and "0.55" in table
    assert "accuracy_slow (paper)" in table and "0.71" in table  # sequential, all test clips, beside ours


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown method"):
        run_comparison("vmnist", ["cnn"], "quick", tmp_path)
    with pytest.raises(ValueError, match="unknown preset"):
        run_comparison("vmnist", ["3d"], "huge", tmp_path)
