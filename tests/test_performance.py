"""Performance switches (mixed precision, channels-last, compile, activation checkpointing, fused/foreach Adam,
cuDNN benchmark): the same training as the fp32 reference, reachable from the bundle configs, and benchmarked."""

from __future__ import annotations

import copy
import mmap
import subprocess
import sys
import warnings

import pytest
import torch
from monai.bundle import ConfigWorkflow

from mr2ct.benchmarks import inference as inference_benchmark
from mr2ct.benchmarks import measure as measuring
from mr2ct.benchmarks import training_step as benchmark
from mr2ct.bundle import load_config
from mr2ct.cli import main as cli
from mr2ct.engine import performance
from mr2ct.engine.distributed import wrap_ddp
from mr2ct.engine.performance import (
    adam_options,
    amp_dtype,
    compile_network,
    memory_format,
    set_checkpoint_blocks,
    to_channels_last,
)
from mr2ct.networks import PatchGANDiscriminator, ResnetGenerator, init_weights

from conftest import REPO, VMNIST_BUNDLE

BUNDLES = sorted(p.parent.parent for p in (REPO / "bundles").glob("*/configs/metadata.json"))
SHAPE = {"method": "3d", "shape": (8, 16, 16), "channels": 1, "ngf": 4, "blocks": 2, "device": "cpu"}


def _train(options: tuple[str, ...], steps: int = 2) -> tuple[list[dict], dict]:
    """The losses of ``steps`` training iterations with switches ``options`` (the later ones after optimizer
    steps), and the gradients of the first iteration (all four networks).

    Gradients, not weights after the steps, are compared: Adam scales every update to about ``lr``, so for the
    convolution biases before instance norms (true gradient 0, numerically noise) the sign of rounding noise
    decides the update."""
    trainer, data = benchmark.build_trainer(**SHAPE, options=options)
    losses, grads = [], {}
    for step in range(steps):
        losses.append({k: v for k, v in trainer._iteration(trainer, data).items() if k.startswith("loss_")})
        if step == 0:
            grads = {
                f"{name}.{k}": p.grad.detach().float().clone()
                for name in ("g_ab", "g_ba", "d_a", "d_b")
                for k, p in getattr(trainer, name).named_parameters()
            }
    return losses, grads


def _assert_close(result, reference, rtol, atol):
    (losses, grads), (ref_losses, ref_grads) = result, reference
    for step, (got, want) in enumerate(zip(losses, ref_losses)):
        assert got.keys() == want.keys()
        for key in want:
            assert got[key] == pytest.approx(want[key], rel=rtol, abs=atol), (step, key)
    assert grads.keys() == ref_grads.keys()
    scale = max(g.abs().max().item() for g in ref_grads.values())  # absolute tolerance relative to all gradients
    for key in ref_grads:
        torch.testing.assert_close(grads[key], ref_grads[key], rtol=rtol, atol=atol * scale, msg=key)


@pytest.fixture(scope="module")
def reference():
    return _train(())


@pytest.mark.parametrize(
    "options",
    [("channels_last",), ("checkpoint_blocks",), ("fused_adam",), ("channels_last", "checkpoint_blocks", "fused_adam")],
    ids="+".join,
)
def test_fp32_switches_train_like_the_reference(reference, options):
    _assert_close(_train(options), reference, rtol=1e-4, atol=1e-5)


def test_bf16_autocast_computes_close_to_the_reference(reference):
    """The first iteration under bf16 autocast: losses within 10% (or 0.05) of fp32, and each network's gradient
    points the same way (cosine similarity above 0.8; on the development machine, emulated bf16: 0.90 and 0.96 for
    the generators, whose 7x7x7 convolutions sum many bf16 products, 0.998 for the discriminators).

    Later iterations are not compared: bf16 rounding differs between CPU kernels (AVX-512 bf16 or emulated), and
    Adam turns any difference in a near-zero gradient into a full-size update (see ``_train``), so losses after an
    update (loss_g_ba after one step) differed by 12% on one CI machine."""
    (losses, grads), (ref_losses, ref_grads) = _train(("amp",), steps=1), reference
    for key, want in ref_losses[0].items():
        assert losses[0][key] == pytest.approx(want, rel=0.1, abs=0.05), key
    for name in ("g_ab", "g_ba", "d_a", "d_b"):
        keys = [k for k in ref_grads if k.startswith(f"{name}.")]
        got, want = (torch.cat([g[k].flatten() for k in keys]) for g in (grads, ref_grads))
        assert torch.nn.functional.cosine_similarity(got, want, dim=0) > 0.8, name


def test_bf16_steps_keep_finite_gradients():
    """The discriminators' output layer runs in fp32 under autocast: with it in bf16, torch 2.13's CPU kernels
    gave a non-finite weight gradient in about 7% of quick-shape steps on the development machine (AVX-512 bf16),
    which skipped those updates; now none of 50 steps on fresh batches is skipped."""
    trainer, data = benchmark.build_trainer("3d", (16, 28, 28), 1, 8, 3, "cpu", options=("amp", "channels_last"))
    trainer.max_nonfinite_steps = 0  # the first skipped step raises
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        trainer._iteration(trainer, {k: torch.rand(v.shape, generator=generator) * 2 - 1 for k, v in data.items()})
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert trainer.d_a(data["A"]).dtype == torch.float32


def test_one_iteration_runs_each_generator_twice_and_reuses_the_fakes():
    """The discriminator update reuses the generator update's translations (detached): per iteration each
    generator runs twice (translation and reconstruction), each discriminator three times (the generators'
    adversarial loss, then real and pooled fake)."""
    trainer, data = benchmark.build_trainer(**SHAPE)
    calls = {name: 0 for name in ("g_ab", "g_ba", "d_a", "d_b")}
    for name in calls:
        getattr(trainer, name).register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
    out = trainer._iteration(trainer, data)
    assert calls == {"g_ab": 2, "g_ba": 2, "d_a": 3, "d_b": 3}
    assert not out["fake_b"].requires_grad


def test_data_loading_benchmark(tmp_path, capsys):
    from mr2ct.benchmarks import data_loading

    from test_bundle import TINY

    result = data_loading.main(
        [
            "vmnist_cyclegan3d",
            "--quick",
            "--batches",
            "3",
            "--dataset_dir",
            str(tmp_path),
            *[x for k, v in TINY.items() for x in (f"--{k}", str(v))],
        ]
    )
    assert len(result["times"]) == 3 and result["setup"] > 0 and result["clips_per_batch"] >= 1
    assert "clip pairs / s" in capsys.readouterr().out


def test_checkpointed_blocks_give_the_same_gradients_and_save_memory(monkeypatch):
    torch.manual_seed(0)
    plain = init_weights(ResnetGenerator(3, 1, 1, channels=4, num_res_blocks=3, dropout=0.3))
    ckpt = set_checkpoint_blocks(copy.deepcopy(plain))
    x = torch.rand(1, 1, 8, 16, 16)
    calls = []
    original = torch.utils.checkpoint.checkpoint
    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", lambda *a, **k: calls.append(k) or original(*a, **k))

    def run(net):
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
            torch.manual_seed(1)  # the same dropout masks
            loss = (net(x) ** 2).mean()
        loss.backward()
        return loss.detach(), {n: p.grad for n, p in net.named_parameters()}, sum(saved)

    loss, grads, saved = run(plain)
    assert not calls
    loss_ckpt, grads_ckpt, saved_ckpt = run(ckpt)
    assert len(calls) == 3 and all(k["use_reentrant"] is False for k in calls)
    torch.testing.assert_close(loss_ckpt, loss)
    for name in grads:
        torch.testing.assert_close(grads_ckpt[name], grads[name], rtol=1e-5, atol=1e-6)
    assert saved_ckpt < saved  # fewer activations kept for the backward pass
    calls.clear()
    with torch.no_grad():  # inference: nothing to checkpoint
        torch.testing.assert_close(ckpt.eval()(x), plain.eval()(x))
    assert not calls


def test_channels_last_converts_networks_in_place_and_batches():
    net = PatchGANDiscriminator(3, 1, 4, input_size=(8, 16, 16))
    params = list(net.parameters())
    to_channels_last(net)
    assert list(net.parameters()) == params or all(a is b for a, b in zip(net.parameters(), params))
    weights = [p for p in net.parameters() if p.ndim == 5]
    assert weights and all(p.is_contiguous(memory_format=torch.channels_last_3d) for p in weights)
    assert to_channels_last(torch.rand(2, 3, 4, 5)).is_contiguous(memory_format=torch.channels_last)
    assert memory_format(3) == torch.contiguous_format


def test_adam_options():
    assert adam_options(False, "cuda") == {"fused": None, "foreach": None}
    assert adam_options(True, "cuda") == {"fused": True, "foreach": None}
    assert adam_options(True, torch.device("cpu")) == {"fused": None, "foreach": True}


def test_amp_dtype_checks():
    with pytest.raises(ValueError, match="needs a CUDA device"):
        benchmark.build_trainer(**SHAPE, options=("amp",), amp_dtype="float16")
    with pytest.raises(ValueError, match="amp_dtype"):
        benchmark.build_trainer(**SHAPE, options=("amp",), amp_dtype="float8")
    trainer, _ = benchmark.build_trainer(**SHAPE, options=(), amp_dtype="float16")  # amp off: not checked
    assert trainer.scaler is None


def test_bf16_amp_on_a_cpu_without_native_bf16_warns(monkeypatch):
    assert isinstance(performance.cpu_has_native_bf16(), bool)  # the real check runs on any build
    monkeypatch.setattr(performance, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(UserWarning, match="without native bf16"):
        assert amp_dtype("bfloat16", "cpu") == torch.bfloat16
    monkeypatch.setattr(performance, "cpu_has_native_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        amp_dtype("bfloat16", "cpu")
        amp_dtype("bfloat16", None)  # amp off: nothing checked


def test_compiled_networks_keep_their_state_dict_keys(tmp_path):
    net = ResnetGenerator(3, 1, 1, channels=4, num_res_blocks=1)
    keys = list(net.state_dict())
    assert compile_network(net) is net
    assert list(net.state_dict()) == keys and not any("_orig_mod" in k for k in keys)
    torch.save(net.state_dict(), tmp_path / "model.pt")
    weights = torch.load(tmp_path / "model.pt", weights_only=True)
    ResnetGenerator(3, 1, 1, channels=4, num_res_blocks=1).load_state_dict(weights)
    trainer, _ = benchmark.build_trainer(**SHAPE, options=("compile",))
    for name in ("g_ab", "g_ba", "d_a", "d_b"):
        module = getattr(trainer, name)
        assert type(module).__name__ in ("ResnetGenerator", "PatchGANDiscriminator")
        assert not any("_orig_mod" in k for k in module.state_dict())


@pytest.mark.slow
def test_compiled_step_trains_like_the_reference(reference):
    _assert_close(_train(("compile",)), reference, rtol=1e-3, atol=1e-4)


SWITCHES_ON = {
    "amp": True,
    "amp_dtype": "bfloat16",
    "channels_last": True,
    "compile": True,
    "checkpoint_blocks": True,
    "fused_adam": True,
    "cudnn_benchmark": True,
}


@pytest.fixture
def restore_cudnn_benchmark():
    before = torch.backends.cudnn.benchmark
    yield
    torch.backends.cudnn.benchmark = before


def test_every_switch_reachable_from_the_vmnist_bundle(tiny_vmnist, tmp_path, restore_cudnn_benchmark):
    configs = VMNIST_BUNDLE / "configs"
    workflow = ConfigWorkflow(
        config_file=str(configs / "train.json"),
        workflow_type="train",
        meta_file=str(configs / "metadata.json"),
        bundle_root=str(VMNIST_BUNDLE),
        dataset_dir=str(tiny_vmnist),
        ckpt_dir=str(tmp_path / "models"),
        output_dir=str(tmp_path / "runs"),
        depth=8,
        size=[16, 16],
        num_digits=40,
        ngf=4,
        ndf=4,
        num_res_blocks=1,
        num_workers=0,
        device="cpu",
        **{k: str(v).lower() if isinstance(v, bool) else v for k, v in SWITCHES_ON.items()},
    )
    workflow.initialize()
    assert torch.backends.cudnn.benchmark is True
    trainer = workflow.parser.get_parsed_content("train#trainer")
    assert trainer.amp and trainer.amp_dtype == torch.bfloat16 and trainer.channels_last
    assert trainer.g_ab.checkpoint_blocks and trainer.g_ba.checkpoint_blocks
    for net in (trainer.g_ab, trainer.g_ba, trainer.d_a, trainer.d_b):
        assert net._compiled_call_impl is not None  # compiled in place
    for optimizer in (trainer.g_optimizer, trainer.d_optimizer):
        assert optimizer.defaults["foreach"] is True and not optimizer.defaults["fused"]


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
def test_switch_keys_off_by_default_and_wired(bundle):
    parser = load_config(bundle.name)
    assert {k: parser[k] for k in SWITCHES_ON} == {
        "amp": False,
        "amp_dtype": "bfloat16",
        "channels_last": False,
        "compile": False,
        "checkpoint_blocks": False,
        "fused_adam": False,
        "cudnn_benchmark": False,
    }
    trainer = parser["train"]["trainer"]
    assert {"amp_dtype", "channels_last", "compile"} <= set(trainer)
    assert "@checkpoint_blocks" in parser["network_def"]["checkpoint_blocks"]
    assert all(parser[o]["fused_adam"] == "@fused_adam" for o in ("g_optimizer", "d_optimizer"))
    assert any("@cudnn_benchmark" in item for item in parser["setup"])
    parser.update(
        {"ngf": 4, "ndf": 4, "num_res_blocks": 1, "device": "cpu", "fused_adam": True, "checkpoint_blocks": True}
    )
    assert parser.get_parsed_content("g_optimizer").defaults["foreach"] is True
    assert parser.get_parsed_content("network_def").checkpoint_blocks is True


def test_benchmark_side_by_side(tmp_path, capsys):
    out = tmp_path / "BENCH.md"
    rows = benchmark.main(
        [
            "--device",
            "cpu",
            "--shapes",
            "8x16x16:1:4:2",
            "--opt",
            "channels_last,fused_adam",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--in-process",
            "--markdown",
            str(out),
        ]
    )
    assert [r["name"] for r in rows] == ["fp32 reference", "channels_last+fused_adam"]
    reference = rows[0]["result"]
    # the reference's first step counted: convolutions forward and backward, the same model FLOPs as built again
    trainer, data = benchmark.build_trainer(**SHAPE)
    assert reference["flops"] == measuring.count_flops(lambda: trainer._iteration(trainer, data))[1] > 0
    assert reference["peak"] > 0 and reference["peak_kind"] == "RSS rise"
    printed = capsys.readouterr().out
    assert "speed-up" in printed and "TFLOP/s" in printed and "first-step losses" in printed
    text = out.read_text(encoding="utf-8")
    assert "## Training step, CPU" in text and "$ mr2ct bench --device cpu" in text
    assert benchmark.parse_shape("30x84x84") == {"shape": (30, 84, 84), "channels": 1, "ngf": 64, "blocks": 9}
    assert benchmark.expand_shapes(["paper,quick"]) == [*benchmark.PAPER_SHAPES, *benchmark.QUICK_SHAPES]
    with pytest.raises(ValueError, match="unknown --opt"):
        benchmark.parse_options("amp,turbo")
    with pytest.raises(ValueError, match="expected DxHxW"):
        benchmark.parse_shape("30x84")


@pytest.mark.slow
def test_benchmarks_from_the_command_line(tmp_path):
    """``mr2ct bench`` runs each variant in its own process; a bad argument is a one-line usage error."""
    cmd = [
        sys.executable,
        "-m",
        "mr2ct.cli",
        "bench",
        "--device",
        "cpu",
        "--shapes",
        "8x16x16:1:4:1",
        "--opt",
        "fused_adam",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--threads",
        "1",
    ]
    run = subprocess.run(cmd, capture_output=True, encoding="utf-8", errors="replace", timeout=300, cwd=REPO)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "| 8x16x16 | 1 | 4 | 1 | fused_adam |" in run.stdout
    with pytest.raises(SystemExit):
        cli(["bench", "--shapes", "30x84"])
    for bad in (["inference", "--overlap", "1"], ["data", "no_such_bundle"], ["--device", "cuda"]):
        if bad[-1] == "cuda" and torch.cuda.is_available():
            continue
        with pytest.raises(SystemExit):
            cli(["bench", *bad])


def test_count_flops_of_a_convolution():
    """2 FLOPs per multiply-add: a 3x3x3 convolution of 2 -> 4 channels over 5x6x7 outputs (padding 1)."""
    conv = torch.nn.Conv3d(2, 4, 3, padding=1)
    out, flops = measuring.count_flops(lambda: conv(torch.rand(1, 2, 5, 6, 7)))
    assert out.shape == (1, 4, 5, 6, 7) and flops == 2 * (5 * 6 * 7) * 4 * 2 * 27
    x = torch.rand(1, 2, 5, 6, 7, requires_grad=True)
    _, with_backward = measuring.count_flops(lambda: conv(x).sum().backward())
    assert with_backward == 3 * flops  # the input's and the weights' gradients cost a forward pass each


def test_peak_memory_and_peak_tflops(monkeypatch):
    with measuring.PeakMemory("cpu") as memory:
        # 64 MiB of fresh pages, one byte written per page: an anonymous mapping, not the heap, whose freed pages
        # from earlier tests in this process may still be resident (then a tensor of this size raises no RSS)
        with mmap.mmap(-1, 64 * 2**20) as block:
            for offset in range(0, len(block), mmap.PAGESIZE):
                block[offset] = 1
    assert memory.kind == "RSS rise" and memory.peak >= 60 * 2**20
    assert measuring.peak_tflops("cpu") is None
    for name, peak in (
        ("NVIDIA H100 80GB HBM3", 989.4),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H200", 989.4),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA L40S", 362.1),
        ("NVIDIA L4", 121.0),
        ("Tesla T4", None),
    ):
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None, name=name: name)
        assert measuring.peak_tflops("cuda:0") == peak, name


def test_inference_benchmark_batched_windows_and_bf16(tmp_path):
    """Batching windows changes no output (fp32); bf16 autocast stays close to the fp32 reference."""
    common = [
        "--volume",
        "20",
        "16",
        "16",
        "--roi",
        "8",
        "16",
        "16",
        "--ngf",
        "4",
        "--blocks",
        "1",
        "--device",
        "cpu",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--in-process",
    ]
    batched = inference_benchmark.main([*common, "--sw-batch-size", "3", "--opt", "none"])
    assert batched["reference"]["windows"] == batched["optimised"]["windows"] == 3  # at depth 0, 6 and 12
    assert batched["max_abs_difference"] < 1e-5
    assert batched["reference"]["flops"] > 0 and batched["optimised"]["flops"] is None
    out = tmp_path / "BENCH.md"
    amp = inference_benchmark.main(
        [*common, "--sw-batch-size", "2", "--opt", "amp,channels_last", "--markdown", str(out)]
    )
    assert 0 < amp["max_abs_difference"] < 0.1
    assert "## Whole-volume inference, CPU" in out.read_text(encoding="utf-8")


def test_wrap_ddp_converts_to_channels_last_first():
    """Outside a process group wrap_ddp returns the module; with channels_last its parameters are converted."""
    net = torch.nn.Conv3d(2, 4, 3)
    assert wrap_ddp(net, "cpu", channels_last=True) is net
    assert net.weight.is_contiguous(memory_format=torch.channels_last_3d) and not net.weight.is_contiguous()


def test_bf16_nonfinite_gradients_skip_the_update():
    """bf16 autocast has no grad scaler: finite losses with a non-finite gradient must not reach the weights."""
    trainer, data = benchmark.build_trainer(**SHAPE, options=("amp",))
    last = list(trainer.d_b.parameters())[-2]  # the output convolution's weight
    last.register_hook(lambda g: g * float("nan"))
    before = {name: copy.deepcopy(getattr(trainer, name).state_dict()) for name in ("g_ab", "d_a", "d_b")}
    trainer.max_nonfinite_steps = None
    out = trainer._iteration(trainer, data)
    assert all(torch.isfinite(torch.tensor(v)) for k, v in out.items() if k.startswith("loss_"))
    assert trainer.state.nonfinite_steps == 1
    for name, state in before.items():
        for key, value in getattr(trainer, name).state_dict().items():
            assert torch.equal(value, state[key]), (name, key)
