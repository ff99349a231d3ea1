"""Training of the shipped critics: data, loop, export, calibration.

Not part of the `cprs-cli` wheel: it lives beside the package in the repository and is run from a
checkout (`python -m training ...`, `python -m training.calibrate ...`; docs/training.md). It
reads the project's QA data through `cprs_cli.evaluation.qa`, whose by-document split decides
what training never sees.

* `data`      - records -> training examples (augmentation, long packing, hard negatives, synthetic)
* `loop`      - the training loop (one process or torchrun data-parallel) and the delta export
* `calibrate` - the lexical weight and dynamic rule of a critic, tuned on the `calib` split
"""
