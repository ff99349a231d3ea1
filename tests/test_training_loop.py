"""training.loop: resuming from an exported delta gives back the trained model."""

from __future__ import annotations

import torch
from torch import nn

from cprs_cli.critic.lora import add_lora, lora_state
from training.loop import load_delta


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Module()
        self.block.q_proj = nn.Linear(8, 8)
        self.block.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.block.norm(self.block.q_proj(x)))


def _model(seed: int) -> Tiny:
    torch.manual_seed(seed)
    m = Tiny()
    add_lora(m, ("q_proj",), lambda name: 4)
    return m


def _export(m: Tiny) -> dict[str, torch.Tensor]:
    # what loop.export writes: trainable non-LoRA tensors as full.*, LoRA pairs with the scale in B
    delta = {f"full.{n}": p.detach().clone() for n, p in m.named_parameters() if "lora_" not in n and
             (n.startswith("head.") or "norm" in n)}
    delta.update({k: v.clone() for k, v in lora_state(m).items()})
    return delta


def test_load_delta_round_trip():
    trained = _model(0)
    with torch.no_grad():  # pretend training moved every trainable tensor (the base stays frozen)
        for p in trained.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p))
    fresh = _model(0)
    x = torch.randn(3, 8)
    assert not torch.allclose(fresh(x), trained(x))
    n = load_delta(fresh, _export(trained))
    assert n == 4 + 2  # head.weight/bias, norm weight/bias, one LoRA pair
    torch.testing.assert_close(fresh(x), trained(x))


def test_load_delta_into_a_higher_rank_keeps_the_function_and_trains_the_new_directions():
    trained = _model(0)
    with torch.no_grad():
        for p in trained.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p))
    torch.manual_seed(1)
    wider = Tiny()
    add_lora(wider, ("q_proj",), lambda name: 8)  # rank 8 from a rank-4 delta
    with torch.no_grad():  # the base (frozen) weights are the same as the trained model's
        wider.block.q_proj.base.load_state_dict(trained.block.q_proj.base.state_dict())
    x = torch.randn(3, 8)
    load_delta(wider, _export(trained))
    torch.testing.assert_close(wider(x), trained(x))
    assert torch.count_nonzero(wider.block.q_proj.lora_B[:, 4:]) == 0  # new directions start at zero
    assert torch.count_nonzero(wider.block.q_proj.lora_A[4:]) > 0  # ... with random A, so B gets gradients
    wider(x).sum().backward()
    assert torch.count_nonzero(wider.block.q_proj.lora_B.grad[:, 4:]) > 0


def test_load_delta_refuses_a_lower_rank():
    trained = _model(0)
    torch.manual_seed(1)
    narrow = Tiny()
    add_lora(narrow, ("q_proj",), lambda name: 2)
    import pytest

    with pytest.raises(ValueError, match="rank 4 is above the adapter's 2"):
        load_delta(narrow, _export(trained))


def test_a_resumed_run_takes_the_deltas_ranks_unless_told_otherwise():
    """Round 4's `small` has rank 64 in its bidirectional layers (the preset says 32):
    `--resume shipped` alone must build adapters that hold it; an explicit rank stays as given."""
    from training.loop import PRESETS, resume_ranks

    start = PRESETS["small"]["bidirectional_start_layer"]
    delta = {f"lora_A.model.layers.{start - 1}.self_attn.q_proj.weight": torch.zeros(16, 8),
             f"lora_A.model.layers.{start}.self_attn.q_proj.weight": torch.zeros(64, 8),
             "full.cls_head.weight": torch.zeros(4, 8)}
    assert resume_ranks("small", delta) == (16, 64)
    assert resume_ranks("small", delta, lora_rank_top=128) == (16, 128)
    small_delta = dict(delta)
    small_delta[f"lora_A.model.layers.{start}.self_attn.q_proj.weight"] = torch.zeros(8, 8)
    assert resume_ranks("small", small_delta) == (16, PRESETS["small"]["lora_rank_top"])  # never below the preset
    assert resume_ranks("mini", {"full.x": torch.zeros(1)}) == (0, 0)
