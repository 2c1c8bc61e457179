"""Time whole-volume sliding-window translation against the fp32 reference (see ``mr2ct.benchmarks.inference``);
the same as ``mr2ct bench inference``."""

from mr2ct.benchmarks.inference import main

if __name__ == "__main__":
    main()
