"""Time one CycleGAN training step against the fp32 reference (see ``mr2ct.benchmarks.training_step``); the same
as ``mr2ct bench``."""

from mr2ct.benchmarks.training_step import main

if __name__ == "__main__":
    main()
