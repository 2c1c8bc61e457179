"""Reproduce the paper's Tables 1 and 2 (see ``mr2ct.reproduce``); same as ``mr2ct reproduce``."""

import sys

from mr2ct.reproduce import main

if __name__ == "__main__":
    sys.exit(main())
