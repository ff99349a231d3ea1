"""`python -m cprs_cli ...` is the same as the `cprs` command."""

from .cli import run

if __name__ == "__main__":
    run()
