"""Does a trained mmnist model hide the digit in its translation's high frequencies (RESULTS.md, Table 1)?

CycleGAN can meet its cycle loss by carrying the input in a faint high-frequency pattern of the translation
instead of drawing it (Chu et al., "CycleGAN, a master of steganography", 2017). If so, blurring the translation
before translating back ruins the reconstruction. This prints the cycle reconstruction error
``mean |G_ba(G_ab(a)) - a|`` (on [-1, 1]) of the first test videos with the translation as is, blurred by a 3x3
box in space, and with Gaussian noise added, for each method folder of a reproduce run::

    python scripts/reproduce.py --task mmnist --preset quick --match-params --methods 3d random \
        --output runs/curves/mmnist
    python scripts/probe_cycle_hiding.py runs/curves/mmnist/3d runs/curves/mmnist/random
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mr2ct.bundle import load_config
from mr2ct.engine import get_method

BUNDLE = "mmnist_color_cyclegan3d"
DATA = "bundles/mmnist_color_cyclegan3d/data/mmnist_v1_s20_v1.5_c20_mlxtend5k_d16_28x28_nall_seed0/test_A.npy"


def load_generators(run: Path) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The two translators of a method folder: the bundle's ``network_def`` built with the settings saved beside
    the weights, wrapped by the method (frame by frame for the 2D methods)."""
    settings = json.loads((run / "models" / "model_settings.json").read_text(encoding="utf-8"))
    parser = load_config(BUNDLE, overrides=settings)
    translators = []
    for name in ("model.pt", "model_ba.pt"):
        net = parser.get_parsed_content("network_def", instantiate=True, lazy=False)
        net.load_state_dict(torch.load(run / "models" / name, weights_only=True))
        translators.append(get_method(settings["method"]).translator(net).eval())
    return translators[0], translators[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="method folders of a reproduce run (with models/)")
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--data", default=DATA, help="domain-A test videos (N, 3, D, H, W) uint8")
    args = parser.parse_args()
    a = torch.from_numpy(np.array(np.load(args.data, mmap_mode="r")[: args.videos])).float() / 127.5 - 1
    torch.manual_seed(0)
    print(f"all-black reconstruction: {float((a + 1).abs().mean()):.4f}")
    for run in args.runs:
        g_ab, g_ba = load_generators(run)
        with torch.no_grad():
            fake = g_ab(a)
            blurred = F.avg_pool3d(F.pad(fake, (1, 1, 1, 1, 0, 0), mode="replicate"), (1, 3, 3), stride=1)
            noisy = (fake + 0.05 * torch.randn_like(fake)).clamp(-1, 1)
            for name, t in (("as is", fake), ("3x3 blur", blurred), ("noise 0.05", noisy)):
                error = float((g_ba(t) - a).abs().mean())
                change = float((t - fake).abs().mean())
                print(f"{run}: {name:10s} reconstruction error {error:.4f} (translation changed by {change:.4f})")


if __name__ == "__main__":
    main()
