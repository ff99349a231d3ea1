"""An encoder critic's Linear layers in dynamic int8 on the CPU (`CPRS_CPU_DTYPE=int8`; opt-in).

What changes: every Linear layer of the encoder (attention query / key / value and output, the
feed-forward pair: about four fifths of `mini`'s arithmetic on 512-token windows, attention's own
products being the rest) becomes torch's dynamically quantised Linear. Its weights are int8,
quantised once at load, per output channel (symmetric); its input is quantised to uint8 on every
call, per tensor, from that batch's own minimum and maximum; the product accumulates in int32 and
comes back as fp32 with the bias added. Everything else stays fp32: the embeddings, the layer
norms, attention's softmax (sdpa), GELU, and the 4-way classifier (4 outputs, no measurable time,
and its error would go straight into the logits).

Why it is wired by hand around `torch.ao.quantization.quantize_dynamic`, the call that does the
work (no new dependency):

* `bert.BertTagger`'s layers are its own `_Linear` (bert.py says why they are not `nn.Linear`),
  and `quantize_dynamic` picks modules by their exact type, so those are first swapped for
  `nn.Linear`s holding the same tensors.
* torch's dynamic Linear always quantises its input to 7 bits (`reduce_range=True`): fbgemm's
  kernels for CPUs without VNNI add pairs of uint8 × int8 products in int16, which 8-bit inputs
  could overflow. With VNNI (and AMX) the products accumulate in int32 and the 8th bit is free;
  on `mini` it, together with per-channel weights (the default qconfig is per tensor), cuts the
  largest change of a keep probability from fp32 on two random 512-token windows from 0.054 to
  0.019 (neither alone does: 0.054 / 0.051). On real text the change is larger still (a mean of
  0.024 over 158K tokens: activation outliers, docs/speed.md). `Int8Linear` is torch's module with that one argument
  set from the CPU's flags (`base.cpu_has_vnni`).
* `torch.ao.quantization` is deprecated in favour of torchao (a separate package) and says so in
  warnings on every call; it is still in every torch this package allows (`torch<2.15`). Those
  warnings are silenced here. This module is imported only when int8 is asked for: if a later
  torch drops `torch.ao.quantization`, `CPRS_CPU_DTYPE=int8` fails at load with a ModelError
  that says so (`loader._maybe_int8`), and the other precisions are unaffected.

The quantised model is inference only (no autograd through packed weights) and stays on the CPU
(`replicate` to a GPU is for GPUs, which ignore the variable). Quality and speed on this
project's CPU: docs/speed.md, "`mini` on the CPU in int8".
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from ..errors import ModelError
from . import bert
from .base import cpu_has_vnni


def _quiet_deprecations() -> None:
    """Inside `warnings.catch_warnings()`: silence torch.ao.quantization's deprecation notices
    (module docstring) and nothing else."""
    warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*torch.ao.quantization")
    warnings.filterwarnings("ignore", category=UserWarning, message=".*quantized tensor creation")


with warnings.catch_warnings():  # torch's eager-mode quantisation (deprecated: module docstring)
    _quiet_deprecations()
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic


class Int8Linear(DynamicQuantizedLinear):
    """torch's dynamically quantised Linear with the input's 8th bit used where the CPU
    accumulates int8 products in int32 (VNNI); elsewhere torch's own 7 bits."""

    reduce_range = True  # quantize_linears sets it per module from the CPU's flags

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.ops.quantized.linear_dynamic(x, self._packed_params._packed_params,
                                               reduce_range=self.reduce_range)
        return y.to(x.dtype)


def _as_nn_linear(layer: bert._Linear) -> nn.Linear:
    """An `nn.Linear` holding `layer`'s own weight and bias tensors (no copy)."""
    out = nn.Linear(layer.weight.shape[1], layer.weight.shape[0], device=layer.weight.device)
    out.weight, out.bias = layer.weight, layer.bias
    return out


def _swap_plain_linears(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, bert._Linear):
            setattr(module, name, _as_nn_linear(child))
        else:
            _swap_plain_linears(child)


def quantize_linears(model: nn.Module, *, head: str = "classifier") -> nn.Module:
    """`model` (an encoder critic's fp32 model on the CPU: `BertTagger` or a transformers
    `*ForTokenClassification`) with every Linear layer but `head` dynamically quantised to int8,
    in place; `model.cprs_int8` is then True (`Critic.precision` reads it). ModelError when the
    model is not fp32 on the CPU."""
    first = next(model.parameters())
    if first.device.type != "cpu" or first.dtype != torch.float32:
        raise ModelError(f"int8 quantisation needs an fp32 model on the CPU, got {first.dtype} on {first.device}")
    _swap_plain_linears(model)
    # quantize_dynamic takes module names too: every Linear outside the head, by name
    names = {name for name, m in model.named_modules()
             if type(m) is nn.Linear and not (name == head or name.startswith(head + "."))}
    with warnings.catch_warnings():
        _quiet_deprecations()
        quantize_dynamic(model, dict.fromkeys(names, per_channel_dynamic_qconfig),
                         mapping={nn.Linear: Int8Linear}, inplace=True)
    reduce_range = not cpu_has_vnni()
    for m in model.modules():
        if isinstance(m, Int8Linear):
            m.reduce_range = reduce_range
    setattr(model, "cprs_int8", True)  # noqa: B010 (an attribute nn.Module's typing does not declare)
    return model.eval()
