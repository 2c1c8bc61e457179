from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mr2ct.cli import main
from mr2ct.export import plot_loss_curves, save_frame_panel, save_side_by_side_gif, summarize_metric_details, to_display
from mr2ct.overrides import parse_overrides


def test_summary_mean_sigma_and_mse_ratio():
    details = {"l2": torch.tensor([[1.0], [3.0]]), "identity_l2": torch.tensor([[2.0], [4.0]])}
    s = summarize_metric_details(details, {"mse_ratio": ("l2", "identity_l2")})
    assert s["l2"] == {"mean": 2.0, "std": 1.0, "n": 2}
    assert s["mse_ratio"]["mean"] == pytest.approx((1 + 9) / (4 + 16))


def test_to_display_scales_and_orders_channels():
    grey = to_display(np.full((1, 2, 3, 3), 127.5), (0, 255))
    assert grey.shape == (2, 3, 3) and np.allclose(grey, 0.5)
    rgb = to_display(torch.ones(3, 2, 4, 4) * 2, (-1, 1))
    assert rgb.shape == (2, 4, 4, 3) and rgb.max() == 1.0  # clipped
    with pytest.raises(ValueError, match="1 or 3 channels"):
        to_display(np.zeros((2, 2, 3, 3)), (0, 1))


def test_panels_gif_and_loss_curve_files(tmp_path):
    rows = {"input": torch.rand(1, 6, 8, 8), "output": torch.rand(1, 6, 8, 8)}
    png = save_frame_panel(rows, tmp_path / "p.png", num_frames=4, value_range=(0, 1))
    gif = save_side_by_side_gif(rows, tmp_path / "p.gif", value_range=(0, 1))
    assert png.read_bytes()[:4] == b"\x89PNG" and gif.read_bytes()[:3] == b"GIF"
    csv = tmp_path / "losses.csv"
    csv.write_text("epoch,iteration,loss_g,loss_d_a\n" + "".join(f"1,{i},{1 / i},{0.5}\n" for i in range(1, 20)))
    assert plot_loss_curves(csv, tmp_path / "curve.png").is_file()
    assert plot_loss_curves(tmp_path / "missing.csv", tmp_path / "x.png") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curve.png", "losses.csv", "p.gif", "p.png"]


def test_cli_overrides_and_errors(capsys):
    assert parse_overrides(["--lr", "0.001", "--resume", "--size", "[16, 16]", "--method", "3d"]) == {
        "lr": 0.001,
        "resume": True,
        "size": [16, 16],
        "method": "3d",
    }
    with pytest.raises(SystemExit):
        parse_overrides(["lr"])
    with pytest.raises(SystemExit):
        main(["--version"])
    assert "mr2ct 0.1.0" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="no bundle .no_such_bundle."):
        main(["train", "no_such_bundle"])


def test_cli_subcommands_reach_their_command_lines(monkeypatch):
    """Every ``mr2ct`` command reaches the right ``main`` with its arguments as given, bundle runs reach
    ``monai.bundle.run`` with their configs and overrides."""
    import monai.bundle

    import mr2ct.benchmarks
    import mr2ct.data.prepare_mrct
    import mr2ct.export.dicom
    import mr2ct.export.reader_study
    import mr2ct.export.sheets
    import mr2ct.reproduce

    calls = []
    for module in (
        mr2ct.benchmarks,
        mr2ct.data.prepare_mrct,
        mr2ct.export.dicom,
        mr2ct.export.reader_study,
        mr2ct.export.sheets,
        mr2ct.reproduce,
    ):
        monkeypatch.setattr(module, "main", lambda argv, name=module.__name__: calls.append((name, argv)) or 7)
    monkeypatch.setattr(monai.bundle, "run", lambda **kwargs: calls.append(("run", kwargs)))
    commands = {
        ("prepare", "--mr", "A", "--ct", "B", "--spacing", "-1", "2", "3"): "mr2ct.data.prepare_mrct",
        ("export-dicom", "X.nii.gz", "--output", "D", "--help"): "mr2ct.export.dicom",
        ("reproduce", "--task", "vmnist"): "mr2ct.reproduce",
        ("bench", "inference", "--volume", "8", "16", "16"): "mr2ct.benchmarks",
        ("review", "sheets", "--source", "MR", "-h"): "mr2ct.export.sheets",
    }
    for argv, module in commands.items():
        assert main(list(argv)) == 7 and calls.pop() == (module, list(argv[2 if argv[0] == "review" else 1 :]))
    for action in ("make", "serve", "score"):
        assert main(["review", action, "STUDY", "--csv", "x.csv"]) == 7
        assert calls.pop() == ("mr2ct.export.reader_study", [action, "STUDY", "--csv", "x.csv"])

    assert main(["train", "vmnist_cyclegan3d", "--learning_rate", "0.1", "--quick", "--resume"]) == 0
    _, run = calls.pop()
    assert run["run_id"] == "training" and [Path(c).name for c in run["config_file"]] == ["train.json", "quick.json"]
    assert run["learning_rate"] == 0.1 and run["resume"] is True
    assert Path(run["bundle_root"]).name == "vmnist_cyclegan3d"
    assert main(["translate", "--input_dir", "IN", "--direction", "mr2ct"]) == 0
    _, run = calls.pop()
    assert run["run_id"] == "inference" and Path(run["bundle_root"]).name == "mrct_cyclegan3d"
    assert [Path(c).name for c in run["config_file"]] == ["inference.json"] and run["input_dir"] == "IN"
    assert not calls
    for bad in ([], ["nope"], ["review"], ["train"]):
        with pytest.raises(SystemExit):
            main(bad)


def test_loss_csv_logger_appends_and_keeps_columns(tmp_path):
    from types import SimpleNamespace

    from mr2ct.engine import LossCSVLogger

    logger = LossCSVLogger(tmp_path / "losses.csv", interval=1)
    engine = SimpleNamespace(state=SimpleNamespace(epoch=1, iteration=1, output={"loss_g": 2.0, "real_a": None}))
    logger(engine)
    engine.state.iteration, engine.state.output = 2, {"loss_g": 1.0, "loss_const": 0.5}
    logger(engine)
    assert (tmp_path / "losses.csv").read_text(encoding="utf-8").splitlines() == [
        "epoch,iteration,loss_g",
        "1,1,2.0",
        "1,2,1.0",
    ]
