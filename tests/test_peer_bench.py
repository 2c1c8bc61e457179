"""``mr2ct bench --peer ganslate``: the usage errors and the CPU's matmul peak (fast); the peer's own
environment and step (slow: builds a virtual environment with torch and ganslate once)."""

from __future__ import annotations

import pytest
import torch

from mr2ct.benchmarks import peer
from mr2ct.benchmarks.training_step import main, parse_shape


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--peer", "cyclegan-pytorch"], "unknown --peer 'cyclegan-pytorch'; choose from ganslate"),
        (["--peer", "ganslate", "--shapes", "32x64x64:1:32:9"], "fixes 64 base channels; give ngf 64, not 32"),
        (["--peer", "ganslate", "--shapes", "30x84x84:1:64:9"], "PatchGAN3D needs a depth >= 32, got 30"),
        (["--peer", "ganslate", "--device", "cuda:0"], "--peer runs on the CPU only"),
    ],
)
def test_peer_usage_errors(capsys, argv, message):
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err


def test_peer_environment_stays_outside_the_repository():
    with pytest.raises(ValueError, match="inside the repository"):
        peer.ensure_ganslate(peer.Path(peer.__file__).resolve().parents[2] / ".peers")
    assert peer.peer_dir("/somewhere") == peer.Path("/somewhere")


def test_matmul_peak_is_a_positive_rate():
    for dtype in (torch.float32, torch.bfloat16):
        assert 0 < peer.matmul_peak(dtype, n=64, repeats=2) < 1e4


@pytest.mark.slow
def test_ganslate_step_in_its_own_environment(tmp_path_factory):
    """Builds (or reuses) the peer's environment under the default peer folder, then one small ganslate step."""
    python = peer.ensure_ganslate()
    result = peer.run_peer(python, parse_shape("32x32x32:1:64:1"), warmup=0, repeats=1)
    assert result["median"] > 0 and result["flops"] > 0 and result["torch"].startswith("2.13.0")
    assert all(v == v for v in result["losses"].values())  # finite
