"""`python -m training ...`: the training loop (`training.loop.main`)."""

from .loop import main

main()
