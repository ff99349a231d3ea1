"""Tests of `cprs serve` and the adapters (a package, so its conftest and helpers keep their own
module names beside tests/conftest.py)."""
