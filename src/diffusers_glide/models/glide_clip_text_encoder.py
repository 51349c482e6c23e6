"""The text tower of GLIDE's noised CLIP (`clip_text_enc.pt`)."""

import torch
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn
from transformers.models.clip.modeling_clip import CLIPTextModelOutput

from ..config_limits import MAX_CONTEXT, MAX_HEADS, MAX_LAYERS, MAX_VOCAB, MAX_WIDTH
from .config_checks import ConfigChecker
from .glide_clip_transformer import GlideCLIPTransformer
from .normalization import Float32LayerNorm
from .parameter_count import clip_text_encoder_parameter_count
from .strict_loading import StrictLoadingMixin


class GlideCLIPTextEncoder(StrictLoadingMixin, ModelMixin, ConfigMixin):
    r"""
    The text encoder of the noised CLIP model OpenAI trained for GLIDE's CLIP guidance: a causal transformer over
    CLIP BPE tokens (`<|startoftext|> ... <|endoftext|>`, zero-padded to the context, see
    [`diffusers_glide.tokenize_clip_prompts`]) whose embedding is the projected, LayerNormed state of the last real
    token (the end token).

    The forward checks shapes only. The values (token ids below `vocab_size`; a right-padded mask with at least one
    real token) are the pipeline's to check, once per call: reading them here would synchronise with an accelerator.
    It has no attention slicing: its attention over `context_length` (77) tokens is small next to the UNet's, so a
    pipeline's `enable_attention_slicing()` leaves it alone.

    Args:
        vocab_size (`int`, *optional*, defaults to 65536): Rows of the token table (the tokenizer uses 49408).
        context_length (`int`, *optional*, defaults to 77): Number of token positions the model always sees.
        hidden_size (`int`, *optional*, defaults to 512): Width of the transformer.
        num_hidden_layers (`int`, *optional*, defaults to 12): Number of transformer blocks.
        num_attention_heads (`int`, *optional*, defaults to 8): Attention heads per block.
        projection_dim (`int`, *optional*, defaults to 512): Size of the joint text-image embedding.
        layer_norm_eps (`float`, *optional*, defaults to 1e-5): Epsilon of every LayerNorm.
    """

    @register_to_config
    def __init__(
        self,
        vocab_size: int = 65536,
        context_length: int = 77,
        hidden_size: int = 512,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 8,
        projection_dim: int = 512,
        layer_norm_eps: float = 1e-5,
    ):
        super().__init__()
        check = ConfigChecker("GlideCLIPTextEncoder")
        check.integer("vocab_size", vocab_size, maximum=MAX_VOCAB)
        check.integer("context_length", context_length, maximum=MAX_CONTEXT)
        check.integer("hidden_size", hidden_size, maximum=MAX_WIDTH)
        check.integer("num_hidden_layers", num_hidden_layers, maximum=MAX_LAYERS)
        check.integer("num_attention_heads", num_attention_heads, maximum=MAX_HEADS)
        check.integer("projection_dim", projection_dim, maximum=MAX_WIDTH)
        check.divides("num_attention_heads", num_attention_heads, [hidden_size], "`hidden_size`")
        check.number("layer_norm_eps", layer_norm_eps, "a number > 0", lambda value: value > 0)
        check.parameter_count(clip_text_encoder_parameter_count(self.config))

        self.token_embedding = nn.Embedding(vocab_size, hidden_size)
        self.position_embedding = nn.Parameter(torch.randn(context_length, hidden_size) * 0.01)
        self.transformer = GlideCLIPTransformer(
            hidden_size, num_hidden_layers, num_attention_heads, causal=True, eps=layer_norm_eps
        )
        self.final_layer_norm = Float32LayerNorm(hidden_size, eps=layer_norm_eps)
        self.text_projection = nn.Linear(hidden_size, projection_dim, bias=False)

    def forward(
        self, input_ids: torch.LongTensor, attention_mask: torch.Tensor, return_dict: bool = True
    ) -> CLIPTextModelOutput | tuple:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch, context_length)`):
                `<|startoftext|>`, the prompt's tokens, `<|endoftext|>`, then padding.
            attention_mask (`torch.Tensor` of shape `(batch, context_length)`):
                True (or 1) on the real tokens (start and end tokens included), then False on the padding. The
                last True position is the one pooled; the causal attention keeps it from seeing the padding.
            return_dict (`bool`, *optional*, defaults to `True`): Return a `CLIPTextModelOutput` instead of a tuple.

        Returns:
            [`~transformers.models.clip.modeling_clip.CLIPTextModelOutput`] with `text_embeds`
            `(batch, projection_dim)` (not normalised) and `last_hidden_state` `(batch, context_length, hidden_size)`.
        """
        context_length = self.config.context_length
        if input_ids.ndim != 2 or input_ids.shape[1] != context_length:
            raise ValueError(
                f"`input_ids` must have shape (batch, {context_length}) (prompts padded to the context length), "
                f"got {tuple(input_ids.shape)}."
            )
        if attention_mask is None or attention_mask.shape != input_ids.shape:
            got = None if attention_mask is None else tuple(attention_mask.shape)
            raise ValueError(
                f"`attention_mask` must have the shape of `input_ids` {tuple(input_ids.shape)}, got {got}."
            )
        lengths = attention_mask.bool().sum(dim=1)

        hidden_states = self.token_embedding(input_ids) + self.position_embedding[None]
        hidden_states = self.transformer(hidden_states)
        last_token = hidden_states[torch.arange(len(hidden_states), device=hidden_states.device), lengths - 1]
        text_embeds = self.text_projection(self.final_layer_norm(last_token))
        if not return_dict:
            return (text_embeds, hidden_states)
        return CLIPTextModelOutput(text_embeds=text_embeds, last_hidden_state=hidden_states)
