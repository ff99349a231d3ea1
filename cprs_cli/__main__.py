"""`python -m cprs_cli ...` is the same as the `cprs` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
