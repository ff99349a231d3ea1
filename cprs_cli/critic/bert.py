"""A BERT token tagger in plain torch, for loading the shipped encoder critic without transformers.

Why it exists: `cprs compress` on a one-page text should finish in well under two seconds, and
importing transformers' BERT (`modeling_bert` pulls in `modeling_utils`, the mask utilities,
the hub-kernel integration and through it `torch.distributed.tensor`) costs more than the whole
rest of the run together: about 1.2 s of import on this project's 2-core CPU, plus 0.3 s of
random weight initialisation that `load_state_dict` then overwrites (docs/speed.md, "Start-up").
The forward pass is a few dozen lines, so it is written out here.

It reproduces `transformers.BertForTokenClassification` (sdpa attention, eval mode) operation
for operation, with the same parameter names, so the same state dict loads strictly and the
logits are bitwise identical (tests/test_startup.py compares the two on padded and unpadded
batches, in fp32 and bf16). Only configurations whose forward pass is exactly this one are
accepted (`supported`); anything else (other activations, relative positions, decoders, eager
attention) is loaded through transformers as before. Training always uses transformers' model
(dropout, gradient checkpointing); this class is inference only.

The model is built on the meta device and its weights assigned from the state dict, so no
random initialisation runs and no memory is allocated twice. Its layers are the three small
classes below rather than `nn.Linear` / `nn.LayerNorm` / `nn.Embedding`: those initialise their
weights in the constructor, and an initialiser on the meta device goes through torch's reference
implementations, which import `torch._dynamo` (about a second on this CPU). Their forwards are
the same functional calls the torch modules make.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

# the forward pass below is transformers' for exactly these settings
_REQUIRED = {"model_type": ("bert",), "hidden_act": ("gelu",),
             "position_embedding_type": ("absolute", None), "is_decoder": (False, None),
             "add_cross_attention": (False, None), "chunk_size_feed_forward": (0, None),
             "_attn_implementation": ("sdpa", None), "attn_implementation": ("sdpa", None)}


def supported(config: dict) -> bool:
    """Whether `config` (a `config.json` as a dict) describes a model this module reproduces."""
    if any(config.get(key) not in allowed for key, allowed in _REQUIRED.items()):
        return False
    needed = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
              "intermediate_size", "max_position_embeddings", "type_vocab_size")
    if not all(isinstance(config.get(k), int) and config[k] > 0 for k in needed):
        return False
    return config["hidden_size"] % config["num_attention_heads"] == 0


@dataclass(frozen=True)
class _Dims:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float
    num_labels: int

    @classmethod
    def of(cls, config: dict) -> _Dims:
        return cls(config["vocab_size"], config["hidden_size"], config["num_hidden_layers"],
                   config["num_attention_heads"], config["intermediate_size"],
                   config["max_position_embeddings"], config["type_vocab_size"],
                   float(config.get("layer_norm_eps", 1e-12)), int(config.get("num_labels", 4)))


def _meta(*shape: int) -> nn.Parameter:
    """An uninitialised weight on the meta device, replaced by `load_state_dict(assign=True)`."""
    return nn.Parameter(torch.empty(shape, device="meta"), requires_grad=False)


class _Linear(nn.Module):
    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight, self.bias = _meta(n_out, n_in), _meta(n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class _LayerNorm(nn.Module):
    def __init__(self, n: int, eps: float):
        super().__init__()
        self.weight, self.bias, self.eps = _meta(n), _meta(n), eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


class _Embedding(nn.Module):
    def __init__(self, n: int, dim: int):
        super().__init__()
        self.weight = _meta(n, dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.weight)


class _Embeddings(nn.Module):
    def __init__(self, d: _Dims):
        super().__init__()
        self.word_embeddings = _Embedding(d.vocab_size, d.hidden_size)
        self.position_embeddings = _Embedding(d.max_position_embeddings, d.hidden_size)
        self.token_type_embeddings = _Embedding(d.type_vocab_size, d.hidden_size)
        self.LayerNorm = _LayerNorm(d.hidden_size, d.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        length = input_ids.shape[1]
        positions = torch.arange(length, device=input_ids.device)[None, :]
        # the same sums in the same order as transformers: (words + token types) + positions
        embeddings = self.word_embeddings(input_ids) + self.token_type_embeddings(torch.zeros_like(input_ids))
        embeddings = embeddings + self.position_embeddings(positions)
        return self.LayerNorm(embeddings)


class _SelfAttention(nn.Module):
    def __init__(self, d: _Dims):
        super().__init__()
        self.heads = d.num_attention_heads
        self.head_size = d.hidden_size // d.num_attention_heads
        self.scaling = self.head_size ** -0.5
        self.query = _Linear(d.hidden_size, d.hidden_size)
        self.key = _Linear(d.hidden_size, d.hidden_size)
        self.value = _Linear(d.hidden_size, d.hidden_size)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        batch, length = h.shape[:2]
        shape = (batch, length, -1, self.head_size)
        q = self.query(h).view(shape).transpose(1, 2)
        k = self.key(h).view(shape).transpose(1, 2)
        v = self.value(h).view(shape).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, scale=self.scaling,
                                             is_causal=False)
        out = out.reshape(batch, -1, length, self.head_size).transpose(1, 2).contiguous()
        return out.reshape(batch, length, -1).contiguous()


class _DenseNorm(nn.Module):
    """`dense` then LayerNorm of the sum with the residual (BertSelfOutput / BertOutput)."""

    def __init__(self, d: _Dims, n_in: int):
        super().__init__()
        self.dense = _Linear(n_in, d.hidden_size)
        self.LayerNorm = _LayerNorm(d.hidden_size, d.layer_norm_eps)

    def forward(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(h) + residual)


class _Attention(nn.Module):
    def __init__(self, d: _Dims):
        super().__init__()
        self.self = _SelfAttention(d)
        self.output = _DenseNorm(d, d.hidden_size)


class _Intermediate(nn.Module):
    def __init__(self, d: _Dims):
        super().__init__()
        self.dense = _Linear(d.hidden_size, d.intermediate_size)


class _Layer(nn.Module):
    def __init__(self, d: _Dims):
        super().__init__()
        self.attention = _Attention(d)
        self.intermediate = _Intermediate(d)
        self.output = _DenseNorm(d, d.intermediate_size)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        a = self.attention.output(self.attention.self(h, mask), h)
        return self.output(F.gelu(self.intermediate.dense(a)), a)


class _Encoder(nn.Module):
    def __init__(self, d: _Dims):
        super().__init__()
        self.layer = nn.ModuleList(_Layer(d) for _ in range(d.num_hidden_layers))


class _Bert(nn.Module):
    def __init__(self, d: _Dims):
        super().__init__()
        self.embeddings = _Embeddings(d)
        self.encoder = _Encoder(d)


class BertTagger(nn.Module):
    """`BertForTokenClassification`'s inference forward: `model(input_ids=, attention_mask=).logits`.

    `config` is a plain namespace of the `config.json` values (what `EncoderCritic` reads:
    `max_position_embeddings`, `cprs_window_tokens`)."""

    def __init__(self, config: dict):
        super().__init__()
        d = _Dims.of(config)
        self.config = SimpleNamespace(**config)
        self.bert = _Bert(d)
        self.classifier = _Linear(d.hidden_size, d.num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> SimpleNamespace:
        h = self.bert.embeddings(input_ids)
        batch, length = input_ids.shape
        mask = None
        # transformers' sdpa mask: none at all when no token is padding, else a boolean
        # (batch, 1, length, length) view of the padding mask. On a GPU the check would wait for
        # the device (a sync per batch): there a mask is taken as padding, which `Critic.launch`
        # passes only when a row is padded
        if attention_mask is not None and (attention_mask.is_cuda or not bool(attention_mask.all())):
            mask = attention_mask.to(dtype=torch.bool)[:, None, None, :].expand(batch, 1, length, length)
        for layer in self.bert.encoder.layer:
            h = layer(h, mask)
        return SimpleNamespace(logits=self.classifier(h))


def build_bert_tagger(config: dict, state: dict[str, torch.Tensor], device: torch.device,
                      dtype: torch.dtype) -> BertTagger:
    """The tagger with `state` loaded strictly (ModelError on missing or unknown tensors, worded
    as `loader.build_model` words them), on `device` in `dtype`, in eval mode. No random
    initialisation: built on the meta device, the state's tensors assigned."""
    from ..errors import ModelError

    model = BertTagger(config)  # every weight on the meta device (_meta)
    state = {k: v for k, v in state.items() if not k.endswith("position_ids")}
    wanted = model.state_dict().keys()
    missing = [k for k in wanted if k not in state]
    if missing:
        raise ModelError(f"weights lack {len(missing)} tensors, e.g. {missing[0]}")
    unknown = [k for k in state if k not in wanted]
    if unknown:
        raise ModelError(f"weights have {len(unknown)} unknown tensors, e.g. {unknown[0]}")
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:  # a tensor of the wrong shape
        raise ModelError(f"weights do not fit the model ({str(exc).splitlines()[-1].strip()})") from None
    return model.to(device=device, dtype=dtype).eval()
