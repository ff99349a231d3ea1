"""The wheel holds the runtime (issue 8): built with `python -m build --wheel` from a copy of the
checkout, it carries the cprs_cli package (the critics' deltas, the sample, the evaluation
package behind `cprs bench`) and nothing of training/, tests/, experiments/ or benchmarks/; no
module in it imports the training code; its requirements are what `cprs compress` needs, with
the benchmark's plots behind the `bench` extra."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to know which files are the project's")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    src = tmp_path_factory.mktemp("src")
    for name in filter(None, listed):
        if (REPO / name).is_file():  # a file deleted but not yet staged is still listed
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    # no isolation: the build backend (setuptools, the dev extra) is already installed, offline
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(src)],
                   capture_output=True, check=True)
    (path,) = out.glob("cprs_cli-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_has_no_training_or_repository_code(wheel):
    names = wheel.namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"cprs_cli", next(t for t in tops if t.endswith(".dist-info"))}, tops
    assert not [n for n in names if n.startswith(("cprs_cli/train/", "cprs_cli/bench/"))]
    assert "cprs_cli/machine.py" not in names and "cprs_cli/synthetic.py" not in names
    for needed in ("cprs_cli/cli.py", "cprs_cli/compressor.py", "cprs_cli/evaluation/bench.py",
                   "cprs_cli/evaluation/qa.py", "cprs_cli/weights/mini/delta.safetensors",
                   "cprs_cli/weights/small/delta.safetensors", "cprs_cli/samples/apollo11.md"):
        assert needed in names, needed


def test_no_module_in_the_wheel_imports_training(wheel):
    for name in wheel.namelist():
        if not name.endswith(".py"):
            continue
        tree = ast.parse(wheel.read(name))
        for node in ast.walk(tree):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                    [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            assert not [m for m in mods if m == "training" or m.startswith("training.")], (name, mods)


def test_wheel_requirements_are_the_runtimes(wheel):
    import cprs_cli

    (meta,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    msg = Parser().parsestr(wheel.read(meta).decode())
    assert msg["Version"] == cprs_cli.__version__
    requires = msg.get_all("Requires-Dist")
    runtime = [r for r in requires if "extra ==" not in r]
    assert any(r.startswith("torch") for r in runtime) and any(r.startswith("bm25s") for r in runtime)
    assert not [r for r in runtime if r.startswith(("matplotlib", "pytest", "ruff", "mypy"))], runtime
    assert any(r.startswith("matplotlib") and 'extra == "bench"' in r for r in requires)
