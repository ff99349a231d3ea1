"""A critic directory can never make cprs run its code or read stdin (issue 9, item 1).

Each hostile directory carries a Python module that, if imported, writes a marker file; the
tests assert the directory is refused with one line and the marker never appears.
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cprs_cli.critic.loader import load_critic, refuse_custom_code
from cprs_cli.errors import ModelError

REPO = Path(__file__).resolve().parent.parent


def hostile_dir(src: Path, dest: Path, marker: Path, *, model_type: str | None = None,
                auto_map: bool = True, code: bool = True, in_tokenizer: bool = False) -> Path:
    """A copy of a tiny critic with custom-code hooks added."""
    shutil.copytree(src, dest)
    if code:
        (dest / "evil.py").write_text(
            f"open({str(marker)!r}, 'w').write('ran')\n"
            "from transformers import BertConfig\n"
            "class EvilConfig(BertConfig):\n    model_type = 'evilbert'\n")
    target = dest / ("tokenizer_config.json" if in_tokenizer else "config.json")
    cfg = json.loads(target.read_text())
    if auto_map:
        cfg["auto_map"] = {"AutoConfig": "evil.EvilConfig",
                           "AutoModelForTokenClassification": "evil.EvilModel",
                           "AutoTokenizer": ["evil.EvilTokenizer", None]}
    if model_type is not None:
        cfg["model_type"] = model_type
    target.write_text(json.dumps(cfg))
    return dest


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "RAN"


@pytest.fixture
def no_input(monkeypatch):
    """Any attempt to prompt fails the test."""
    calls = []

    def fake_input(*args):
        calls.append(args)
        raise AssertionError("input() was called")

    monkeypatch.setattr(builtins, "input", fake_input)
    return calls


@pytest.mark.parametrize("variant", [
    dict(),                                   # auto_map + evil.py, known model_type
    dict(model_type="evilbert"),              # unknown model_type: transformers would prompt
    dict(code=False, model_type="evilbert"),  # auto_map naming code that is not there
    dict(auto_map=False),                     # a stray .py file without an auto_map
    dict(code=False, in_tokenizer=True),      # auto_map in tokenizer_config.json
])
def test_custom_code_directory_is_refused(tiny_encoder_critic_dir, tmp_path, marker, no_input,
                                          variant):
    d = hostile_dir(tiny_encoder_critic_dir, tmp_path / "critic", marker, **variant)
    with pytest.raises(ModelError) as err:
        load_critic(d, device="cpu")
    msg = str(err.value)
    assert "\n" not in msg and str(d) in msg
    assert ("auto_map" in msg) or ("Python code" in msg)
    assert not marker.exists()
    assert not no_input


def test_plain_critic_directory_passes_the_check(tiny_encoder_critic_dir):
    refuse_custom_code(tiny_encoder_critic_dir)  # raises on failure


def test_transformers_is_told_never_to_trust_remote_code(tiny_encoder_critic_dir, tmp_path, marker,
                                                         no_input, monkeypatch):
    """Defence in depth: even with cprs' own check switched off, transformers is called with
    trust_remote_code=False, so it neither runs the code nor prompts."""
    import cprs_cli.critic.loader as loader

    monkeypatch.setattr(loader, "refuse_custom_code", lambda path: None)
    d = hostile_dir(tiny_encoder_critic_dir, tmp_path / "critic", marker, model_type="evilbert")
    with pytest.raises(ModelError):
        load_critic(d, device="cpu")
    assert not marker.exists()
    assert not no_input


def test_stdin_answer_cannot_reach_a_prompt(tiny_encoder_critic_dir, tmp_path, marker):
    """The issue's reproduction: the document's first line 'y' must stay part of the document."""
    d = hostile_dir(tiny_encoder_critic_dir, tmp_path / "critic", marker, model_type="evilbert")
    other = tmp_path / "other.md"
    other.write_text("Another document. It has two sentences.\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "cprs_cli", "compress", "-", str(other), "-q", "Q",
                        "--model", str(d), "--device", "cpu", "--quiet"],
                       input=b"y\nThe quick brown fox. It jumps.\n", capture_output=True, env=env,
                       timeout=300)
    err = r.stderr.decode()
    assert r.returncode == 4, err
    assert "Do you wish" not in err and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("cprs: error:")]
    assert r.stdout == b""
    assert not marker.exists()
