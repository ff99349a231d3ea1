"""Encoder critic: any BERT-family `*ForTokenClassification` with 4 labels (all layers bidirectional).

Input layout: `[CLS] instruction [SEP] query [SEP] context [SEP]`.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Critic

MAX_QUERY_TOKENS = 96


class EncoderCritic(Critic):
    kind = "encoder"
    max_query_tokens = MAX_QUERY_TOKENS

    def __init__(self, model: nn.Module, tokenizer, *, name: str, sha256: str, device: torch.device,
                 window_tokens: int | None = None, **selection):
        # selection: thresholds, dynamic, lexical_weight (Critic.__init__)
        super().__init__(model, tokenizer, name=name, sha256=sha256, device=device, **selection)
        cfg = model.config
        self.max_positions = int(getattr(cfg, "max_position_embeddings", 512))
        self.default_window_tokens = int(window_tokens or getattr(cfg, "cprs_window_tokens", 0) or self.max_positions)
        self.default_batch_size = 64 if device.type == "cuda" else 8

    def prompt_ids(self, instruction: str, query: str) -> tuple[list[int], list[int]]:
        tok = self.tokenizer
        cls_id, sep_id = tok.cls_token_id, tok.sep_token_id
        instr = self.text_ids(instruction)
        q = self.text_ids(query)[:MAX_QUERY_TOKENS]
        return [cls_id, *instr, sep_id, *q, sep_id], [sep_id]

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits
