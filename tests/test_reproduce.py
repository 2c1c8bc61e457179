from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mr2ct.bundle import bundle_root, load_config
from mr2ct.bundle.settings import settings_class
from mr2ct.networks import count_parameters
from mr2ct.reproduce import (
    TASKS,
    comparison,
    format_mean_sigma,
    main,
    matched_2d_widths,
    run_comparison,
    run_seeds,
    seed_orderings,
    summarise_seeds,
    write_curves,
)

import conftest

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

GTA_TINY = {**conftest.GTA_TINY, "max_epochs": 1, "decay_epochs": 0, "epoch_length": 2}


def _networks(bundle: str, files: list[Path], overrides: dict) -> tuple[int, int]:
    config = load_config(bundle, files=files, overrides=overrides)
    return tuple(count_parameters(config.get_parsed_content(n)) for n in ("network_def", "discriminator_def"))


@pytest.mark.parametrize(
    "preset_overrides",
    [{}, {"gen_sampling_kernel": 3, "d_view": "clip"}],
    ids=["frame-wise 3D layers", "the paper's 3D layers"],
)
def test_matched_widths_count_the_3d_networks_as_configured(preset_overrides):
    """The 2D widths match the 3D model that trains (here mmnist's quick preset, whose 3D discriminator judges
    frames and whose sampling convolutions are frame-wise), not a default 3D network of the same ngf/ndf."""
    bundle = TASKS["mmnist"].bundle
    files = [Path(bundle_root(bundle)) / "configs" / "quick.json"]
    overrides = {"ngf": 8, "ndf": 8, **preset_overrides}
    widths = matched_2d_widths(bundle, files, overrides, "random")
    g3, d3 = _networks(bundle, files, {**overrides, "method": "3d"})
    g2, d2 = _networks(bundle, files, {**overrides, "method": "random", **widths})
    assert abs(g2 - g3) / g3 < 0.05 and abs(d2 - d3) / d3 < 0.05
    if preset_overrides:  # 4x4x4 kernels on clips: a wider 2D discriminator
        assert widths["ndf"] > 8
    else:  # the 3D model's discriminator is a 2D one on each frame: the same width
        assert widths["ndf"] == 8


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


@pytest.mark.slow
def test_gta_comparison_runs_all_four_methods_and_prints_table_4(tmp_path):
    overrides = {**GTA_TINY, "dataset_dir": str(tmp_path / "data")}
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
    for method, r in results.items():  # METRICS.md's flicker on class labels, and the temporal metrics, every row
        assert {"label_flicker", "warping_error", "tof"} <= set(r["metrics"]), method
    assert "label_flicker (ours)" in table


@pytest.mark.slow
def test_seeds_give_mean_and_spread_over_seeds_beside_per_video_sigma(tmp_path):
    overrides = {**TINY, "dataset_dir": str(tmp_path / "data")}
    summary = run_seeds("vmnist", ["3d"], "quick", tmp_path / "out", [0, 1], eval_videos=6, overrides=overrides)
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} >= {"seed_0", "seed_1", "table.md", "table.csv", "results.json"}
    per_seed = [json.loads((out / f"seed_{s}" / "results.json").read_text(encoding="utf-8")) for s in (0, 1)]
    means = [r["results"]["3d"]["metrics"]["l2"][0] for r in per_seed]
    sigmas = [r["results"]["3d"]["metrics"]["l2"][1] for r in per_seed]
    l2 = summary["3d"]["metrics"]["l2"]
    assert l2["mean"] == pytest.approx(sum(means) / 2)
    assert l2["seed_std"] == pytest.approx(abs(means[0] - means[1]) / 2**0.5)  # sample std of two values
    assert l2["sigma"] == pytest.approx(sum(sigmas) / 2)
    assert set(summary) == {"3d", "identity"} and summary["identity"]["metrics"]["l2"]["seed_std"] > 0
    table = (out / "table.md").read_text(encoding="utf-8")
    assert "seeds 0, 1" in table and "l2 (ours: mean ± seed std)" in table and "27.21 ± 5.27" in table
    assert "ddof 1" in table and "seed_0/figure.png" in table
    saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert saved["meta"]["seeds"] == [0, 1] and "seed" not in saved["meta"]
    rows = list(csv.DictReader((out / "table.csv").read_text(encoding="utf-8").splitlines()))
    assert float(rows[0]["l2 mean"]) == pytest.approx(l2["mean"]) and rows[0]["l2 paper"] == "27.21"
    assert float(rows[0]["l2 seed_std"]) == pytest.approx(l2["seed_std"]) and rows[1]["method"] == "identity"


def test_one_seed_writes_the_single_seed_tables_as_before(tmp_path):
    overrides = {**TINY, "dataset_dir": str(tmp_path / "data")}
    run_seeds("vmnist", ["3d"], "quick", tmp_path / "out", [1], eval_videos=4, overrides=overrides)
    assert not list((tmp_path / "out").glob("seed_*"))
    assert "Preset `quick`, seed 1," in (tmp_path / "out" / "table.md").read_text(encoding="utf-8")


def test_seed_summary_and_orderings_by_hand():
    per_seed = {
        0: {"a": {"metrics": {"l2": (1.0, 0.5)}}, "b": {"metrics": {"l2": (2.0, 0.1)}}},
        1: {"a": {"metrics": {"l2": (3.0, 0.7)}}, "b": {"metrics": {"l2": (2.5, 0.3)}}},
    }
    summary = summarise_seeds(per_seed)
    assert summary["a"]["metrics"]["l2"] == {
        "mean": 2.0,
        "seed_std": pytest.approx(2**0.5),
        "sigma": 0.6,
        "per_seed": {0: 1.0, 1: 3.0},
    }
    assert seed_orderings(summary, "l2") == (["a", "b"], False)
    per_seed[1]["a"]["metrics"]["l2"] = (1.5, 0.7)
    assert seed_orderings(summarise_seeds(per_seed), "l2") == (["a", "b"], True)


def test_seeds_and_seed_on_the_command_line(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("mr2ct.reproduce.command.run_seeds", lambda *a, **k: calls.append(a[4]))
    (tmp_path / "table.md").write_text("t", encoding="utf-8")
    for argv, seeds in ((["--seeds", "0", "1", "2"], [0, 1, 2]), (["--seed", "3"], [3]), ([], [0])):
        main(["--task", "vmnist", "--output", str(tmp_path), *argv])
        assert calls[-1] == seeds
    with pytest.raises(SystemExit):
        main(["--task", "vmnist", "--seed", "1", "--seeds", "2"])


def test_curves_every_n_iterations_over_seeds(tmp_path):
    overrides = {**TINY, "max_epochs": 2, "dataset_dir": str(tmp_path / "data")}  # 4 iterations
    out = tmp_path / "out"
    summary = run_seeds("vmnist", ["3d"], "quick", out, [0, 1], eval_videos=4, overrides=overrides, curve=2)
    rows = list(csv.DictReader((out / "curves.csv").read_text(encoding="utf-8").splitlines()))
    assert list(rows[0]) == ["method", "seed", "iteration", "metric", "value"]
    assert {(r["method"], r["seed"], r["iteration"]) for r in rows} == {
        ("3d", s, i) for s in ("0", "1") for i in ("2", "4")
    }
    final = {float(r["value"]) for r in rows if r["method"] == "3d" and r["iteration"] == "4"}
    assert final == set(summary["3d"]["metrics"]["l2"]["per_seed"].values())  # the last point is the table's
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG" and (out / "seed_1" / "curves.png").is_file()
    # the point at iteration 2 is the generator of checkpoint_2.pt, evaluated by the evaluation workflow
    run = out / "seed_0" / "3d"
    saved = torch.load(run / "models" / "checkpoint_2.pt", weights_only=True)["g_ab"]
    exported = torch.load(run / "curve" / "iteration_2" / "models" / "model.pt", weights_only=True)
    assert all(torch.equal(saved[k], exported[k]) for k in saved)
    report = json.loads((run / "curve" / "iteration_2" / "report" / "metrics.json").read_text(encoding="utf-8"))
    at_2 = next(float(r["value"]) for r in rows if (r["method"], r["seed"], r["iteration"]) == ("3d", "0", "2"))
    assert report["metrics"]["l2"]["mean"] == pytest.approx(at_2)
    assert sorted(p.name for p in (run / "models").glob("checkpoint_*.pt")) == [
        "checkpoint_2.pt",
        "checkpoint_4.pt",
    ]  # all kept (epoch ends 2 and 4; one epoch is 2 iterations)


def test_curve_checkpoints_leave_training_unchanged(tmp_path):
    overrides = {**TINY, "max_epochs": 2, "epoch_length": 3, "dataset_dir": str(tmp_path / "data")}
    for name, curve in (("plain", None), ("curve", 2)):  # curve: checkpoints in mid-epoch too (2 and 4)
        run_comparison("vmnist", ["3d"], "quick", tmp_path / name, eval_videos=2, overrides=overrides, curve=curve)
    plain, curved = (
        torch.load(tmp_path / n / "3d" / "models" / "model.pt", weights_only=True) for n in ("plain", "curve")
    )
    assert all(torch.equal(plain[k], curved[k]) for k in plain)


def test_curves_png_has_one_line_per_method_shaded_over_seeds(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr("mr2ct.reproduce.curves.atomic_savefig", lambda fig, path, **k: drawn.append(fig))
    rows = [(m, s, i, "l2", v + s) for m, v in (("3d", 1.0), ("random", 5.0)) for s in (0, 1) for i in (10, 20)]
    write_curves(TASKS["vmnist"], rows, tmp_path, "test")
    (ax,) = drawn[0].axes
    assert [line.get_label() for line in ax.get_lines()] == ["3d", "random"]
    assert list(ax.get_lines()[1].get_ydata()) == [5.5, 5.5] and len(ax.collections) == 2  # mean, seed range
    assert len((tmp_path / "curves.csv").read_text(encoding="utf-8").splitlines()) == 1 + len(rows)


def test_validation_split_is_evaluated_instead_of_the_test_split(tmp_path):
    overrides = {**TINY, "dataset_dir": str(tmp_path / "data")}
    run_comparison(
        "vmnist",
        ["3d"],
        "quick",
        tmp_path / "out",
        eval_videos=None,
        overrides=overrides,
        split="val",
        val_fraction=0.25,
    )
    saved = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    assert saved["meta"]["split"] == "val" and saved["meta"]["held_out_videos"] == 7  # a quarter of 28 training digits
    report = json.loads((tmp_path / "out" / "3d" / "report" / "metrics.json").read_text(encoding="utf-8"))
    assert report["settings"]["held-out split"] == "val"
    assert "7 held-out videos (val split)" in (tmp_path / "out" / "table.md").read_text(encoding="utf-8")
    (folder,) = (tmp_path / "data").iterdir()
    assert folder.name.endswith("_val0.25") and len(np.load(folder / "train_A.npy", mmap_mode="r")) == 10  # 21 // 2


def test_gta_curve_evaluates_the_checkpoints_video_to_segmentation_generator(tmp_path):
    # GTA's Table 4 evaluates direction b2a: each curve point must export model_ba.pt (G_BA), not only model.pt
    overrides = {**GTA_TINY, "dataset_dir": str(tmp_path / "data")}
    results = run_comparison("gta", ["3d"], "quick", tmp_path / "out", eval_videos=None, overrides=overrides, curve=1)
    assert set(results["3d"]["curve"]) == {1, 2}
    run = tmp_path / "out" / "3d"
    saved = torch.load(run / "models" / "checkpoint_1.pt", weights_only=True)["g_ba"]
    exported = torch.load(run / "curve" / "iteration_1" / "models" / "model_ba.pt", weights_only=True)
    assert all(torch.equal(saved[k], exported[k]) for k in saved)
    report = json.loads((run / "curve" / "iteration_1" / "report" / "metrics.json").read_text(encoding="utf-8"))
    assert report["settings"]["weights"].endswith("model_ba.pt")
    assert results["3d"]["curve"][1]["accuracy_all"][0] == pytest.approx(report["metrics"]["pixel_accuracy"]["mean"])


def test_gta_validation_split_is_a_second_scene_never_trained_on(tmp_path):
    overrides = {**GTA_TINY, "dataset_dir": str(tmp_path / "data")}
    run_comparison("gta", ["3d"], "quick", tmp_path / "out", eval_videos=None, overrides=overrides, split="val")
    saved = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    report = json.loads((tmp_path / "out" / "3d" / "report" / "metrics.json").read_text(encoding="utf-8"))
    assert saved["meta"]["split"] == "val" and report["settings"]["held-out split"] == "val"
    held_out = Path(report["settings"]["data"])
    meta = {
        f.name: json.loads((f / "meta.json").read_text(encoding="utf-8")) for f in (tmp_path / "data").glob("gta_*")
    }
    train_meta = next(m for name, m in meta.items() if name != held_out.name)
    assert "seed1000" in meta[held_out.name]["source"]["scene"] and "seed0" in train_meta["source"]["scene"]
    # 3 of the 4 sequences of the validation scene (one goes to its unused training part), 3 clips of 8 frames each
    assert len(meta[held_out.name]["sequences"]["test"]) == 3 and saved["meta"]["held_out_videos"] == 9
    assert len(np.load(held_out / "slow.npy")) == report["settings"]["slow clips"] > 0


def test_validation_split_settings_are_checked(tmp_path):
    digits, gta = settings_class("vmnist_cyclegan3d"), settings_class("gta_seg2video_cyclegan3d")
    assert digits.check({"eval_split": "val", "val_fraction": 0.1}).eval_split == "val"
    with pytest.raises(ValueError, match="val_fraction is 0"):
        digits.check({"eval_split": "val", "val_fraction": 0.0})
    assert gta.check({"eval_split": "val", "seed": 0, "val_scene_seed": 1000}).val_scene_seed == 1000
    with pytest.raises(ValueError, match="'val_scene_seed' equals 'seed' \\(3\\)"):
        gta.check({"eval_split": "val", "source": None, "seed": 3, "val_scene_seed": 3})
    with pytest.raises(ValueError, match="val_source is null"):
        gta.check({"eval_split": "val", "source": str(tmp_path), "val_source": None})
    assert gta.check({"eval_split": "test", "source": str(tmp_path), "val_source": None}).eval_split == "test"
    with pytest.raises(ValueError, match="'val_scene_seed' must be an integer >= 0"):
        gta.check({"val_scene_seed": -1})


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown method"):
        run_comparison("vmnist", ["cnn"], "quick", tmp_path)
    with pytest.raises(ValueError, match="unknown preset"):
        run_comparison("vmnist", ["3d"], "huge", tmp_path)
    with pytest.raises(ValueError, match="distinct"):
        run_seeds("vmnist", ["3d"], "quick", tmp_path, [1, 1])
    with pytest.raises(ValueError, match="split must be 'test' or 'val'"):
        run_comparison("vmnist", ["3d"], "quick", tmp_path, split="train")
    with pytest.raises(ValueError, match="curve"):
        run_comparison("vmnist", ["3d"], "quick", tmp_path, curve=0)


def test_table_cells_keep_two_significant_digits_of_small_means():
    assert format_mean_sigma((16.5749, 0.5612)) == "16.57 ± 0.56"
    assert format_mean_sigma((0.0079, 0.0016)) == "0.0079 ± 0.0016"  # a warping error, not "0.01 ± 0.00"
    assert format_mean_sigma((0.00013, None)) == "0.0001" and format_mean_sigma((4e-7, 3e-7)) == "0.0000 ± 0.0000"
    assert format_mean_sigma((0.0, 0.0)) == "0.00 ± 0.00" and format_mean_sigma(None) == "-"
    assert format_mean_sigma((float("nan"), None)) == "nan"


def test_resume_reads_back_finished_methods_and_trains_only_the_missing_ones(tmp_path, monkeypatch):
    overrides = {**TINY, "dataset_dir": str(tmp_path / "data")}
    first = run_comparison("vmnist", ["3d"], "quick", tmp_path / "out", eval_videos=4, overrides=overrides)
    trained: list[str] = []
    train = comparison.train_method
    monkeypatch.setattr(
        comparison, "train_method", lambda root, preset, run: trained.append(run["method"]) or train(root, preset, run)
    )
    again = run_comparison(
        "vmnist", ["3d", "random"], "quick", tmp_path / "out", eval_videos=4, overrides=overrides, resume=True
    )
    assert trained == ["random"]
    assert again["3d"]["metrics"]["l2"] == list(first["3d"]["metrics"]["l2"])
    assert again["3d"]["iterations"] == first["3d"]["iterations"] == 2
    table = (tmp_path / "out" / "table.md").read_text(encoding="utf-8")
    assert "| 3d |" in table and "| random |" in table


def test_resume_continues_a_stopped_training_from_its_latest_checkpoint(tmp_path):
    overrides = {**TINY, "max_epochs": 2, "epoch_length": 3, "dataset_dir": str(tmp_path / "data")}
    whole = run_comparison("vmnist", ["3d"], "quick", tmp_path / "whole", eval_videos=2, overrides=overrides, curve=2)
    run_comparison("vmnist", ["3d"], "quick", tmp_path / "out", eval_videos=2, overrides=overrides, curve=2)
    method = tmp_path / "out" / "3d"
    # as if stopped after the checkpoint of iteration 2: no final weights, no later checkpoint, no finished entry
    for stale in [
        method / "comparison.json",
        method / "models" / "model.pt",
        *method.glob("models/checkpoint_[46].pt"),
    ]:
        stale.unlink()
    resumed = run_comparison(
        "vmnist", ["3d"], "quick", tmp_path / "out", eval_videos=2, overrides=overrides, curve=2, resume=True
    )
    assert resumed["3d"]["resumed"] and resumed["3d"]["iterations"] == 6
    weights = [
        torch.load(d / "3d" / "models" / "model.pt", weights_only=True) for d in (tmp_path / "whole", tmp_path / "out")
    ]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert resumed["3d"]["metrics"]["l2"][0] == pytest.approx(whole["3d"]["metrics"]["l2"][0])


def test_resume_refuses_a_folder_that_holds_a_run_of_other_settings(tmp_path):
    overrides = {**TINY, "dataset_dir": str(tmp_path / "data")}
    run_comparison("vmnist", ["3d"], "quick", tmp_path / "out", eval_videos=2, overrides=overrides)
    weights = tmp_path / "out" / "3d" / "models" / "model.pt"
    before = weights.read_bytes()
    with pytest.raises(ValueError, match=r"other settings \(ngf\)"):
        run_comparison(
            "vmnist", ["3d"], "quick", tmp_path / "out", eval_videos=2, overrides={**overrides, "ngf": 6}, resume=True
        )
    assert weights.read_bytes() == before
    (tmp_path / "out" / "3d" / "comparison.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"comparison\.json cannot be read"):
        run_comparison("vmnist", ["3d"], "quick", tmp_path / "out", eval_videos=2, overrides=overrides, resume=True)
    assert weights.read_bytes() == before


def test_one_seed_and_several_seed_runs_are_not_mixed_in_one_output(tmp_path, monkeypatch):
    overrides = {**TINY, "dataset_dir": str(tmp_path / "data")}
    run_seeds("vmnist", ["3d"], "quick", tmp_path / "one", [0], eval_videos=2, overrides=overrides)
    table = (tmp_path / "one" / "table.md").read_bytes()
    monkeypatch.setattr(
        comparison, "train_method", lambda *args: pytest.fail("trained in a folder of the other layout")
    )
    with pytest.raises(ValueError, match=r"one holds a one-seed run \(3d\).*another --output"):
        run_seeds("vmnist", ["3d"], "quick", tmp_path / "one", [0, 1], eval_videos=2, overrides=overrides, resume=True)
    assert (tmp_path / "one" / "table.md").read_bytes() == table and not (tmp_path / "one" / "seed_0").exists()
    (tmp_path / "many" / "seed_0").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"several seeds \(seed_0\).*--output .*many/seed_<s>"):
        run_seeds("vmnist", ["3d"], "quick", tmp_path / "many", [0], eval_videos=2, overrides=overrides)
