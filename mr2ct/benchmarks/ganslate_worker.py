"""The peer's training step, timed in the peer's own virtual environment (run by :mod:`mr2ct.benchmarks.peer`
with that environment's Python, as a script: it imports torch and ganslate only, never mr2ct).

ganslate's ``Resnet3D`` generators (64 base channels, fixed) and ``PatchGAN3D`` discriminators (``ndf`` 64, 3
layers, 4x4x4 kernels), instance norm, doing the work of one mr2ct CycleGAN step: both generators forward
(translation and reconstruction of each domain), LSGAN adversarial + 10 x L1 cycle losses, one backward and an
Adam step (lr 2e-4, betas 0.5/0.999) over both generators; then both discriminators on real and fake, their
LSGAN loss halved, backward and Adam. Prints one JSON object: times, first-step losses, FLOPs, peak memory.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path


def _status(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def main(job: dict) -> dict:
    import ganslate.configs.base  # noqa: F401 - ganslate's networks need its configs imported first
    import torch
    from ganslate.nn.discriminators import PatchGAN3D
    from ganslate.nn.generators import Resnet3D
    from torch.utils.flop_counter import FlopCounterMode

    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    base = _status("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        base = None
    shape, channels, blocks = tuple(job["shape"]), job["channels"], job["blocks"]
    generator = torch.Generator().manual_seed(0)
    a, b = ((torch.rand(1, channels, *shape, generator=generator) * 2 - 1) for _ in range(2))
    torch.manual_seed(0)
    g_ab, g_ba = (Resnet3D(channels, channels, "instance", n_residual_blocks=blocks) for _ in range(2))
    d_a, d_b = (PatchGAN3D(channels, 64, 3, (4, 4, 4), "instance") for _ in range(2))
    adam: dict = {"lr": 2e-4, "betas": (0.5, 0.999)}
    g_opt = torch.optim.Adam([*g_ab.parameters(), *g_ba.parameters()], **adam)
    d_opt = torch.optim.Adam([*d_a.parameters(), *d_b.parameters()], **adam)
    mse, l1 = torch.nn.MSELoss(), torch.nn.L1Loss()

    def lsgan(logits, real: bool):
        return mse(logits, torch.full_like(logits, 1.0 if real else 0.0))

    def step() -> dict:
        for d in (d_a, d_b):
            d.requires_grad_(False)
        g_opt.zero_grad(set_to_none=True)
        fake_b, fake_a = g_ab(a), g_ba(b)
        loss_g_ab, loss_g_ba = lsgan(d_b(fake_b), True), lsgan(d_a(fake_a), True)
        loss_cycle = 10.0 * (l1(g_ba(fake_b), a) + l1(g_ab(fake_a), b))
        (loss_g_ab + loss_g_ba + loss_cycle).backward()
        g_opt.step()
        for d in (d_a, d_b):
            d.requires_grad_(True)
        d_opt.zero_grad(set_to_none=True)
        loss_d_a = 0.5 * (lsgan(d_a(a), True) + lsgan(d_a(fake_a.detach()), False))
        loss_d_b = 0.5 * (lsgan(d_b(b), True) + lsgan(d_b(fake_b.detach()), False))
        (loss_d_a + loss_d_b).backward()
        d_opt.step()
        return {"loss_g_ab": loss_g_ab, "loss_g_ba": loss_g_ba, "loss_cycle": loss_cycle, "loss_d_a": loss_d_a}

    times, losses, flops = [], None, None
    for i in range(job["warmup"] + job["repeats"]):
        start = time.perf_counter()
        if i == 0:
            counter = FlopCounterMode(display=False)
            with counter:
                out = step()
            flops = int(counter.get_total_flops())
        else:
            out = step()
        values = torch.stack([v.detach() for v in out.values()]).tolist()
        times.append(time.perf_counter() - start)
        losses = losses or dict(zip(out, values))
    hwm = _status("VmHWM")
    timed = times[job["warmup"] :] or times
    return {
        "first": times[0],
        "median": statistics.median(timed),
        "times": timed,
        "peak": None if base is None or hwm is None else hwm - base,
        "peak_kind": "RSS rise",
        "losses": losses,
        "batch": 1,
        "skipped": 0,
        "flops": flops,
        "torch": torch.__version__,
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
