"""The pre-norm residual transformer block shared by GLIDE's text transformer and the noised CLIP towers."""

import torch
from torch import nn

from .normalization import Float32LayerNorm


class PreNormTransformerLayer(nn.Module):
    """`x + attn(ln(x))`, then `x + mlp(ln(x))` with a 4x GELU MLP; `attention` maps `(B, L, W)` to `(B, L, W)`."""

    def __init__(self, hidden_size: int, attention: nn.Module, eps: float):
        super().__init__()
        self.norm1 = Float32LayerNorm(hidden_size, eps=eps)
        self.attn = attention
        self.norm2 = Float32LayerNorm(hidden_size, eps=eps)
        self.mlp = nn.Sequential(
            nn.Linear(hidden_size, 4 * hidden_size), nn.GELU(), nn.Linear(4 * hidden_size, hidden_size)
        )

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = hidden_states + self.attn(self.norm1(hidden_states))
        return hidden_states + self.mlp(self.norm2(hidden_states))
