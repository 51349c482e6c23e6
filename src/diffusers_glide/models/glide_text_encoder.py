"""GLIDE's text transformer.

A small GPT-like transformer without causal masking: token + position embeddings, padded positions
*replaced* by a learned per-position padding embedding (GLIDE uses no attention mask at all), pre-norm
residual blocks and a final LayerNorm. The UNet consumes all output positions (as extra keys/values in its
attention layers) and the last position (added to the timestep embedding).
"""

import torch
import torch.nn.functional as F
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn
from transformers.modeling_outputs import BaseModelOutput

from ..config_limits import MAX_CONTEXT, MAX_HEADS, MAX_LAYERS, MAX_VOCAB, MAX_WIDTH
from .config_checks import ConfigChecker
from .normalization import Float32LayerNorm
from .parameter_count import text_encoder_parameter_count
from .pre_norm_transformer import PreNormTransformerLayer
from .strict_loading import StrictLoadingMixin


class GlideTextSelfAttention(nn.Module):
    """Full (non-causal) multi-head self-attention with a fused q|k|v projection."""

    def __init__(self, hidden_size: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.to_qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.to_out = nn.Linear(hidden_size, hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        batch, length, width = hidden_states.shape
        # [B, L, 3*W] -> 3 x [B, heads, L, head_dim]
        qkv = self.to_qkv(hidden_states).view(batch, length, 3, self.num_heads, width // self.num_heads)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        attended = F.scaled_dot_product_attention(query, key, value)
        return self.to_out(attended.transpose(1, 2).reshape(batch, length, width))


class GlideTextEncoder(StrictLoadingMixin, ModelMixin, ConfigMixin):
    r"""
    The text transformer of GLIDE. Prompts are always padded or truncated to exactly `context_length` tokens
    (see [`diffusers_glide.tokenize_prompts`]).

    The forward checks shapes only: token ids must be below `vocab_size`, which the pipelines check once against
    their tokenizer rather than on every call (reading the ids would synchronise with an accelerator). It has no
    attention slicing: its attention over `context_length` (128) tokens is small next to the UNet's, so a pipeline's
    `enable_attention_slicing()` leaves it alone.

    Args:
        vocab_size (`int`, *optional*, defaults to 50257): Size of the token vocabulary (GPT-2 BPE).
        context_length (`int`, *optional*, defaults to 128): Number of token positions the model always sees.
        hidden_size (`int`, *optional*, defaults to 512): Width of the transformer.
        num_hidden_layers (`int`, *optional*, defaults to 16): Number of transformer blocks.
        num_attention_heads (`int`, *optional*, defaults to 8): Attention heads per block.
        use_final_layer_norm (`bool`, *optional*, defaults to `True`): Apply a LayerNorm to the output states.
        use_padding_embedding (`bool`, *optional*, defaults to `True`):
            Replace the input of padded positions (where `attention_mask` is False) by a learned embedding.
            Without it GLIDE ignores the mask entirely, and so does this model.
        layer_norm_eps (`float`, *optional*, defaults to 1e-5): Epsilon of every LayerNorm.
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        vocab_size: int = 50257,
        context_length: int = 128,
        hidden_size: int = 512,
        num_hidden_layers: int = 16,
        num_attention_heads: int = 8,
        use_final_layer_norm: bool = True,
        use_padding_embedding: bool = True,
        layer_norm_eps: float = 1e-5,
    ):
        super().__init__()
        check = ConfigChecker("GlideTextEncoder")
        check.integer("vocab_size", vocab_size, maximum=MAX_VOCAB)
        check.integer("context_length", context_length, maximum=MAX_CONTEXT)
        check.integer("hidden_size", hidden_size, maximum=MAX_WIDTH)
        check.integer("num_hidden_layers", num_hidden_layers, maximum=MAX_LAYERS)
        check.integer("num_attention_heads", num_attention_heads, maximum=MAX_HEADS)
        check.divides("num_attention_heads", num_attention_heads, [hidden_size], "`hidden_size`")
        check.boolean("use_final_layer_norm", use_final_layer_norm)
        check.boolean("use_padding_embedding", use_padding_embedding)
        check.number("layer_norm_eps", layer_norm_eps, "a number > 0", lambda value: value > 0)
        check.parameter_count(text_encoder_parameter_count(self.config))

        self.token_embedding = nn.Embedding(vocab_size, hidden_size)
        self.position_embedding = nn.Parameter(torch.randn(context_length, hidden_size) * 0.01)
        self.padding_embedding = (
            nn.Parameter(torch.randn(context_length, hidden_size) * 0.01) if use_padding_embedding else None
        )
        self.layers = nn.ModuleList(
            [
                PreNormTransformerLayer(
                    hidden_size, GlideTextSelfAttention(hidden_size, num_attention_heads), layer_norm_eps
                )
                for _ in range(num_hidden_layers)
            ]
        )
        self.final_layer_norm = Float32LayerNorm(hidden_size, eps=layer_norm_eps) if use_final_layer_norm else None
        self.gradient_checkpointing = False

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        return_dict: bool = True,
    ) -> BaseModelOutput | tuple:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch, context_length)`):
                Token ids in `[0, vocab_size)`, padded to the context.
            attention_mask (`torch.Tensor` of shape `(batch, context_length)`, *optional*):
                True (or 1) on real tokens, False (0) on padding. Required when the model has a padding embedding.
            output_hidden_states (`bool`, *optional*, defaults to `False`): Also return every block's output.
            return_dict (`bool`, *optional*, defaults to `True`): Return a `BaseModelOutput` instead of a tuple.

        Returns:
            [`~transformers.modeling_outputs.BaseModelOutput`] whose `last_hidden_state` has shape
            `(batch, context_length, hidden_size)`: the UNet's `encoder_hidden_states`.
        """
        context_length = self.config.context_length
        if input_ids.ndim != 2 or input_ids.shape[1] != context_length:
            raise ValueError(
                f"`input_ids` must have shape (batch, {context_length}) (prompts padded to the context length), "
                f"got {tuple(input_ids.shape)}."
            )
        if self.padding_embedding is not None:
            if attention_mask is None:
                raise ValueError(
                    "`attention_mask` is required: this text encoder replaces padded positions by its learned "
                    "padding embedding and needs to know which positions are padding."
                )
            if attention_mask.shape != input_ids.shape:
                raise ValueError(
                    f"`attention_mask` must have the shape of `input_ids` {tuple(input_ids.shape)}, "
                    f"got {tuple(attention_mask.shape)}."
                )

        hidden_states = self.token_embedding(input_ids) + self.position_embedding[None]
        if self.padding_embedding is not None:
            is_token = attention_mask.bool()[..., None]
            hidden_states = torch.where(is_token, hidden_states, self.padding_embedding[None].to(hidden_states.dtype))

        all_hidden_states = (hidden_states,) if output_hidden_states else None
        for layer in self.layers:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                hidden_states = self._gradient_checkpointing_func(layer, hidden_states)
            else:
                hidden_states = layer(hidden_states)
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
        if self.final_layer_norm is not None:
            hidden_states = self.final_layer_norm(hidden_states)

        if not return_dict:
            return (hidden_states, all_hidden_states) if output_hidden_states else (hidden_states,)
        return BaseModelOutput(last_hidden_state=hidden_states, hidden_states=all_hidden_states)
