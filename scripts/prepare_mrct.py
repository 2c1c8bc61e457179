"""Prepare raw MR and CT downloads for the MR/CT bundle (see ``mr2ct.data.prepare_mrct``); ``--help`` for options."""

import sys

from mr2ct.data.prepare_mrct import main

if __name__ == "__main__":
    sys.exit(main())
