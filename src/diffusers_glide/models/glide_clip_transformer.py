"""The transformer trunk shared by the two towers of GLIDE's noised CLIP."""

import torch
import torch.nn.functional as F
from torch import nn

from .pre_norm_transformer import PreNormTransformerLayer


class GlideCLIPSelfAttention(nn.Module):
    """Multi-head self-attention with separate projections; the key projection has no bias, as in OpenAI's CLIP.

    `causal` gives the text tower's left-to-right mask. Padding is never masked: the text tower pools the last
    real token, which a causal mask already keeps from seeing the padding after it.
    """

    def __init__(self, hidden_size: int, num_heads: int, causal: bool):
        super().__init__()
        self.num_heads = num_heads
        self.causal = causal
        self.to_q = nn.Linear(hidden_size, hidden_size)
        self.to_k = nn.Linear(hidden_size, hidden_size, bias=False)
        self.to_v = nn.Linear(hidden_size, hidden_size)
        self.to_out = nn.Linear(hidden_size, hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        batch, length, width = hidden_states.shape

        def heads(projected):  # [B, L, W] -> [B, heads, L, head_dim]
            return projected.view(batch, length, self.num_heads, width // self.num_heads).transpose(1, 2)

        query, key, value = (
            heads(self.to_q(hidden_states)),
            heads(self.to_k(hidden_states)),
            heads(self.to_v(hidden_states)),
        )
        attended = F.scaled_dot_product_attention(query, key, value, is_causal=self.causal)
        return self.to_out(attended.transpose(1, 2).reshape(batch, length, width))


class GlideCLIPTransformer(nn.Module):
    """A stack of pre-norm transformer layers (no final norm: each tower normalises only what it pools)."""

    def __init__(self, hidden_size: int, num_layers: int, num_heads: int, causal: bool, eps: float):
        super().__init__()
        self.layers = nn.ModuleList(
            [
                PreNormTransformerLayer(hidden_size, GlideCLIPSelfAttention(hidden_size, num_heads, causal), eps)
                for _ in range(num_layers)
            ]
        )

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            hidden_states = layer(hidden_states)
        return hidden_states
