"""lexical: BM25 scores of a document's units (bm25s), normalised by the best unit."""

from __future__ import annotations

import numpy as np

from cprs_cli import lexical, segment

TEXT = ("The Eiffel Tower is in Paris. It was finished in 1889. Bananas are yellow. "
        "Gustave Eiffel's company built the tower. Paris is the capital of France.")


def test_unit_bm25_ranks_the_matching_sentence_first_and_normalises():
    units = segment.sentence_spans(TEXT)
    s = lexical.unit_bm25(TEXT, units, "When was the Eiffel Tower finished?")
    assert s.shape == (len(units),)
    assert s.max() == 1.0 and s.min() >= 0.0
    texts = [TEXT[a:b] for a, b in units]
    assert texts[int(np.argmax(s))] in ("The Eiffel Tower is in Paris.", "It was finished in 1889.")
    assert s[texts.index("Bananas are yellow.")] == 0.0


def test_unit_bm25_without_shared_words_is_all_zero():
    units = segment.sentence_spans(TEXT)
    assert not lexical.unit_bm25(TEXT, units, "zyxw qwvut").any()
    assert not lexical.unit_bm25(TEXT, units, "   ").any()
    assert len(lexical.unit_bm25(TEXT, units[:0], "Paris")) == 0


def test_word_units_take_their_sentence_score():
    words = segment.word_spans(TEXT)
    sents = segment.sentence_spans(TEXT)
    per_sentence = lexical.unit_bm25(TEXT, sents, "bananas yellow")
    per_word = lexical.unit_bm25(TEXT, words, "bananas yellow", scope=sents)
    for (a, _), v in zip(words, per_word):
        owner = max(i for i, (s, _) in enumerate(sents) if s <= a)
        assert v == per_sentence[owner]


def test_bm25s_is_imported_without_jax_or_numba(tmp_path):
    """bm25s imports JAX when it is installed and runs a top-k on it, which on a GPU host makes
    JAX take 75% of the GPU's memory; cprs hides both accelerators while bm25s is imported, and a
    program's own later `import jax` still works. Fake `jax` and `numba` packages record imports."""
    import os
    import subprocess
    import sys

    for name in ("jax", "numba"):
        pkg = tmp_path / name
        pkg.mkdir()
        (pkg / "__init__.py").write_text(
            f"import pathlib\npathlib.Path({str(tmp_path)!r}, {name + '.imported'!r}).touch()\n"
            "def njit(f=None, **kw):\n    return f if f is not None else (lambda g: g)\n")
        (pkg / "lax.py").write_text("def top_k(x, k):\n    return x[:k], list(range(k))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}

    def run(code: str) -> str:
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                              check=True, cwd=tmp_path).stdout.strip()

    # control: a plain import of bm25s does import them (so the test can tell)
    run("import bm25s")
    assert (tmp_path / "jax.imported").exists()
    for name in ("jax", "numba"):
        (tmp_path / f"{name}.imported").unlink(missing_ok=True)
    out = run("from cprs_cli import lexical; import numpy as np\n"
              "print(np.round(lexical.bm25_scores(['apollo moon', 'river bank'], 'moon'), 3).tolist())\n"
              "import sys; print(sys.modules.get('jax') is None, sys.modules.get('numba') is None)\n"
              "import jax; print(jax.__name__)")
    lines = out.splitlines()
    assert lines[1] == "True True" and lines[2] == "jax"
    assert float(lines[0].strip("[]").split(",")[0]) > 0
    assert not (tmp_path / "numba.imported").exists()
    # only the program's own `import jax` at the end ran the fake package
    assert (tmp_path / "jax.imported").exists()


def test_bm25_from_many_threads_at_first_import():
    """The first BM25 calls of a process often come from several worker threads at once
    (`Compressor` computes each query's scores in a pool): none may see bm25s half imported."""
    import subprocess
    import sys

    code = ("from concurrent.futures import ThreadPoolExecutor\n"
            "from cprs_cli import lexical\n"
            "texts = ['apollo moon landing', 'river bank', 'the moon']\n"
            "with ThreadPoolExecutor(8) as pool:\n"
            "    out = list(pool.map(lambda i: lexical.bm25_scores(texts, 'moon').tolist(), range(32)))\n"
            "print(len({tuple(o) for o in out}), len(out))\n")
    for _ in range(3):  # each run a fresh process: the race is at the first import
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert r.stdout.split() == ["1", "32"], r.stderr
