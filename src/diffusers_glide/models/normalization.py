"""Normalisation layers that always compute in float32, as GLIDE does.

GLIDE runs its GroupNorm/LayerNorm in float32 even when the rest of the model is float16, and casts the
result back. Keeping that behaviour lets float16/bfloat16 weights reproduce the float32 model closely.
Float64 inputs stay in float64.
"""

import torch
import torch.nn.functional as F
from torch import nn


class Float32GroupNorm(nn.GroupNorm):
    """`nn.GroupNorm` evaluated in (at least) float32, optionally followed by SiLU (fused here to stay in float32)."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, apply_silu: bool = False):
        super().__init__(num_groups, num_channels, eps=eps)
        self.apply_silu = apply_silu

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        dtype = torch.promote_types(hidden_states.dtype, torch.float32)
        output = F.group_norm(
            hidden_states.to(dtype), self.num_groups, self.weight.to(dtype), self.bias.to(dtype), self.eps
        )
        if self.apply_silu:
            output = F.silu(output)
        return output.to(hidden_states.dtype)


class Float32LayerNorm(nn.LayerNorm):
    """`nn.LayerNorm` evaluated in (at least) float32."""

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        dtype = torch.promote_types(hidden_states.dtype, torch.float32)
        output = F.layer_norm(
            hidden_states.to(dtype), self.normalized_shape, self.weight.to(dtype), self.bias.to(dtype), self.eps
        )
        return output.to(hidden_states.dtype)
