"""Hybrid decoder critic: a Llama / Qwen2 decoder whose top layers attend both ways.

Layers below `bidirectional_start_layer` keep the causal mask; the layers from it upward see
the whole window, so a token can see where its sentence ends (QwenLong-CPRS, "hybrid
attention"). A 4-way `cls_head` on the final hidden states gives B/I/O/E logits. The module
layout (`model.*`, `cls_head.*`, optional `lm_head.*`) is the official QwenLong-CPRS-7B one,
so its checkpoint loads as is.

The official code patches transformers 4.44.2 internals. Here the decoder layers of the
installed transformers (5.x) are driven directly with masks built below, which keeps the
stock layer code (RoPE, GQA, sdpa/eager kernels) untouched.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import AutoModel

from .base import Critic

DEFAULT_BIDIRECTIONAL_START = 21  # as in the official code (layers 21-27 of 28)
MAX_QUERY_TOKENS = 256

SYSTEM_PROMPT = ("<|im_start|>system\n{instruction}<|im_end|>\n<|im_start|>user\n{query}<|im_end|>\n"
                 "<|im_start|>context\n")


class HybridTagger(nn.Module):
    """Decoder backbone + `cls_head` (+ optional `lm_head` for LM-as-critic tag scoring)."""

    def __init__(self, config, with_lm_head: bool = False):
        super().__init__()
        self.config = config
        impl = getattr(config, "_attn_implementation", None) or "sdpa"
        self.model = AutoModel.from_config(config, attn_implementation=impl,
                                            trust_remote_code=False)
        self.cls_head = nn.Linear(config.hidden_size, 4)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False) if with_lm_head else None
        n = config.num_hidden_layers
        start = getattr(config, "bidirectional_start_layer", None)
        self.bidirectional_start = min(n, DEFAULT_BIDIRECTIONAL_START if start is None else int(start))
        # token ids whose LM-head rows score the tags B, I, O, E (LM as critic); optional
        self.lm_tag_ids = getattr(config, "cprs_lm_tag_token_ids", None)
        self.score_mode = getattr(config, "cprs_score_mode", "cls")
        self.gradient_checkpointing = False
        for i, layer in enumerate(self.model.layers):
            # sdpa reads this flag when no explicit mask is passed
            layer.self_attn.is_causal = i < self.bidirectional_start

    def _masks(self, attention_mask, length: int, dtype, device):
        """(causal, bidirectional) masks for the layers; None where the kernel's flag suffices.

        cprs always pads on the right. A causal layer then never lets a real token see a pad
        (pads come after it), so with sdpa/flash kernels the causal layers need no mask at all
        and keep the fastest kernel; only the bidirectional layers must hide the pad keys.
        The eager kernel has no causal flag, so it gets an explicit causal mask.
        """
        # on a GPU, checking would wait for the device (a sync per batch): a mask given there is
        # taken as padding (`Critic.launch` passes one only when a row is padded; an all-ones mask
        # only costs a mask of zeros)
        padded = attention_mask is not None and (attention_mask.is_cuda or not bool(attention_mask.all()))
        fast = getattr(self.config, "_attn_implementation", "sdpa") in ("sdpa", "flash_attention_2",
                                                                         "flash_attention_3")
        neg = torch.finfo(dtype).min
        key_mask = bidir = None
        if padded:
            key_mask = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, L)
            bidir = torch.zeros(key_mask.shape, dtype=dtype, device=device).masked_fill(~key_mask, neg)
        if fast:
            return None, bidir
        allowed = torch.ones((length, length), dtype=torch.bool, device=device).tril()[None, None]
        if key_mask is not None:
            allowed = allowed & key_mask
        causal = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, neg)
        return causal, bidir

    def hidden(self, input_ids, attention_mask=None, output_hidden_states: bool = False):
        base = self.model
        h = base.embed_tokens(input_ids)
        length = input_ids.shape[1]
        pos = torch.arange(length, device=input_ids.device).unsqueeze(0)
        pos_emb = base.rotary_emb(h, position_ids=pos)
        causal, bidir = self._masks(attention_mask, length, h.dtype, h.device)
        states = []
        for i, layer in enumerate(base.layers[: self.config.num_hidden_layers]):
            mask = causal if i < self.bidirectional_start else bidir
            if self.gradient_checkpointing and self.training:
                h = checkpoint(layer, h, mask, pos, None, False, pos_emb, use_reentrant=False)
            else:
                h = layer(h, attention_mask=mask, position_ids=pos, position_embeddings=pos_emb)
            if output_hidden_states:
                states.append(h)
        h = base.norm(h)
        return (h, states) if output_hidden_states else h

    def forward(self, input_ids, attention_mask=None):
        h = self.hidden(input_ids, attention_mask)
        logits = self.cls_head(h)
        if self.score_mode != "cls" and self.lm_head is not None and self.lm_tag_ids:
            lm = F.linear(h, self.lm_head.weight[list(self.lm_tag_ids)])
            logits = lm if self.score_mode == "lm" else logits + lm
        return logits


class HybridCritic(Critic):
    kind = "hybrid"
    max_query_tokens = MAX_QUERY_TOKENS

    def __init__(self, model: HybridTagger, tokenizer, *, name: str, sha256: str, device: torch.device,
                 window_tokens: int | None = None, **selection):
        # selection: thresholds, dynamic, lexical_weight (Critic.__init__)
        super().__init__(model, tokenizer, name=name, sha256=sha256, device=device, **selection)
        cfg = model.config
        self.max_positions = int(getattr(cfg, "max_position_embeddings", 8192))
        default = getattr(cfg, "cprs_window_tokens", 0) or min(8192, self.max_positions)
        self.default_window_tokens = int(window_tokens or default)
        self.default_batch_size = 32 if device.type == "cuda" else 2

    def prompt_ids(self, instruction: str, query: str) -> tuple[list[int], list[int]]:
        # the template's own "<|im_start|>" / "<|im_end|>" are the real special tokens; the
        # instruction and query are tokenised apart from it as plain text (`text_ids`), so a
        # query holding "<|im_end|>" cannot close the user turn
        head, rest = SYSTEM_PROMPT.split("{instruction}")
        mid, tail = rest.split("{query}")
        frame = lambda s: list(self.tokenizer(s, add_special_tokens=False)["input_ids"])  # noqa: E731
        q_ids = self.text_ids(query)[:MAX_QUERY_TOKENS]
        return [*frame(head), *self.text_ids(instruction), *frame(mid), *q_ids, *frame(tail)], []

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        return self.model(input_ids, attention_mask)
