"""Benchmarks, each side by side against a plain fp32 reference in one run (``mr2ct bench``):

- :mod:`~mr2ct.benchmarks.training_step`: one CycleGAN training step with the bundles' performance switches
  (``mr2ct bench [...]``, ``python scripts/benchmark.py``);
- :mod:`~mr2ct.benchmarks.inference`: whole-volume sliding-window translation with batched windows and AMP
  (``mr2ct bench inference [...]``, ``python scripts/benchmark_inference.py``);
- :mod:`~mr2ct.benchmarks.data_loading`: a bundle's training data loader, batches per second
  (``mr2ct bench data BUNDLE [...]``);
- :mod:`~mr2ct.benchmarks.cost_curves`: step time and memory against volume size and ngf, inference against
  volume size, as a CSV and a PNG (``mr2ct bench curves [...]``);
- :mod:`~mr2ct.benchmarks.peer`: our step beside ganslate's in its own environment (``mr2ct bench --peer ganslate``);
- :mod:`~mr2ct.benchmarks.measure`: what both measure the same way (peak memory, FLOPs, the machine).
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str]) -> int:
    """``mr2ct bench [inference|data|curves] ARGS``: the inference or data-loading benchmark when the first argument
    names it, else the training-step benchmark."""
    if argv[:1] == ["curves"]:
        from mr2ct.benchmarks.cost_curves import main as cost_curves

        cost_curves(argv[1:])
    elif argv[:1] == ["data"]:
        from mr2ct.benchmarks.data_loading import main as data_loading

        data_loading(argv[1:])
    elif argv[:1] == ["inference"]:
        from mr2ct.benchmarks.inference import main as inference

        inference(argv[1:])
    else:
        from mr2ct.benchmarks.training_step import main as training_step

        training_step(argv)
    return 0
