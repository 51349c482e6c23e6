"""The image tower of GLIDE's noised CLIP (`clip_image_enc.pt`)."""

import torch
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn
from transformers.models.clip.modeling_clip import CLIPVisionModelOutput

from ..config_limits import (
    MAX_HEADS,
    MAX_IMAGE_SIZE,
    MAX_LAYERS,
    MAX_PATCH_GRID,
    MAX_PATCH_SIZE,
    MAX_TRAIN_TIMESTEPS,
    MAX_WIDTH,
)
from .config_checks import ConfigChecker
from .glide_clip_transformer import GlideCLIPTransformer
from .normalization import Float32LayerNorm
from .parameter_count import clip_image_encoder_parameter_count
from .strict_loading import StrictLoadingMixin

# OpenAI CLIP's per-channel pixel statistics on the [0, 255] scale.
CLIP_PIXEL_MEAN = (122.77093945, 116.74601272, 104.09373519)
CLIP_PIXEL_STD = (68.50053285, 66.63215831, 70.32316309)


class GlideCLIPImageEncoder(StrictLoadingMixin, ModelMixin, ConfigMixin):
    r"""
    The image encoder of the noised CLIP model OpenAI trained for GLIDE's CLIP guidance: a ViT over noised images
    `x_t` whose first token, where a CLIP ViT has its class embedding, is a learned embedding of the diffusion
    timestep `t`. The embedding is the projected, LayerNormed output state of that first token.

    Images are taken in [-1, 1], the diffusion models' range, and mapped to CLIP's pixel normalisation inside
    (`(x + 1) * 127.5`, then CLIP's channel mean and std), without clamping: noised images go outside [-1, 1].

    It has no attention slicing: its attention over `1 + (image_size / patch_size) ** 2` tokens (257) is small next
    to the UNet's, so a pipeline's `enable_attention_slicing()` leaves it alone.

    Args:
        image_size (`int`, *optional*, defaults to 64): Height and width of the images; others are rejected.
        patch_size (`int`, *optional*, defaults to 4): Side of the square patches (a stride-`patch_size` conv).
        hidden_size (`int`, *optional*, defaults to 768): Width of the transformer.
        num_hidden_layers (`int`, *optional*, defaults to 12): Number of transformer blocks.
        num_attention_heads (`int`, *optional*, defaults to 12): Attention heads per block.
        projection_dim (`int`, *optional*, defaults to 512): Size of the joint text-image embedding.
        num_train_timesteps (`int`, *optional*, defaults to 1000):
            Diffusion steps the timestep table covers; `timestep` must be an ORIGINAL step index below it.
        logit_scale (`float`, *optional*, defaults to 100.0):
            CLIP's temperature `exp(logit_scale)` (the released model's 100): CLIP guidance differentiates
            `logit_scale * cosine(image embedding, text embedding)`.
        layer_norm_eps (`float`, *optional*, defaults to 1e-5): Epsilon of every LayerNorm.
    """

    @register_to_config
    def __init__(
        self,
        image_size: int = 64,
        patch_size: int = 4,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        projection_dim: int = 512,
        num_train_timesteps: int = 1000,
        logit_scale: float = 100.0,
        layer_norm_eps: float = 1e-5,
    ):
        super().__init__()
        check = ConfigChecker("GlideCLIPImageEncoder")
        check.integer("image_size", image_size, maximum=MAX_IMAGE_SIZE)
        check.integer("patch_size", patch_size, maximum=MAX_PATCH_SIZE)
        check.integer("hidden_size", hidden_size, maximum=MAX_WIDTH)
        check.integer("num_hidden_layers", num_hidden_layers, maximum=MAX_LAYERS)
        check.integer("num_attention_heads", num_attention_heads, maximum=MAX_HEADS)
        check.integer("projection_dim", projection_dim, maximum=MAX_WIDTH)
        check.integer("num_train_timesteps", num_train_timesteps, maximum=MAX_TRAIN_TIMESTEPS)
        check.divides("patch_size", patch_size, [image_size], "`image_size`")
        if image_size // patch_size > MAX_PATCH_GRID:  # the attention runs over every patch
            smallest = -(-image_size // MAX_PATCH_GRID)
            grid = f"{MAX_PATCH_GRID} x {MAX_PATCH_GRID}"
            expected = f"at least {smallest} for image_size {image_size} (at most {grid} patches)"
            check.fail("patch_size", patch_size, expected)
        check.divides("num_attention_heads", num_attention_heads, [hidden_size], "`hidden_size`")
        check.number("logit_scale", logit_scale, "a number > 0", lambda value: value > 0)
        check.number("layer_norm_eps", layer_norm_eps, "a number > 0", lambda value: value > 0)
        check.parameter_count(clip_image_encoder_parameter_count(self.config))
        num_positions = 1 + (image_size // patch_size) ** 2
        self.patch_embedding = nn.Conv2d(3, hidden_size, patch_size, stride=patch_size, bias=False)
        self.timestep_embedding = nn.Embedding(num_train_timesteps, hidden_size)
        self.position_embedding = nn.Parameter(torch.randn(num_positions, hidden_size) * 0.01)
        self.pre_layer_norm = Float32LayerNorm(hidden_size, eps=layer_norm_eps)
        self.transformer = GlideCLIPTransformer(
            hidden_size, num_hidden_layers, num_attention_heads, causal=False, eps=layer_norm_eps
        )
        self.final_layer_norm = Float32LayerNorm(hidden_size, eps=layer_norm_eps)
        self.image_projection = nn.Linear(hidden_size, projection_dim, bias=False)
        # Non-persistent: constants of CLIP, not weights, yet they follow the model across devices and dtypes.
        self.register_buffer("pixel_mean", torch.tensor(CLIP_PIXEL_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(CLIP_PIXEL_STD).view(1, 3, 1, 1), persistent=False)

    def _timestep_ids(self, timestep: int | torch.Tensor, batch: int, device: torch.device) -> torch.LongTensor:
        # Shapes only: the values (integer steps in [0, num_train_timesteps)) are the pipeline's to check, once per
        # call, since reading them here would synchronise with an accelerator at every step.
        timestep = torch.as_tensor(timestep, device=device)
        if timestep.ndim == 0:
            timestep = timestep.expand(batch)
        if timestep.shape != (batch,):
            raise ValueError(
                f"`timestep` must be a number or a tensor of shape ({batch},) (one per image), got shape "
                f"{tuple(timestep.shape)}."
            )
        return timestep.long()

    def forward(
        self, sample: torch.Tensor, timestep: int | torch.Tensor, return_dict: bool = True
    ) -> CLIPVisionModelOutput | tuple:
        r"""
        Args:
            sample (`torch.Tensor` of shape `(batch, 3, image_size, image_size)`): Noised images x_t in [-1, 1] scale.
            timestep (`int` or `torch.Tensor`):
                The ORIGINAL diffusion step of `sample`, one or one per image: integers in `[0, num_train_timesteps)`
                (not checked here: the pipeline checks them once per call).
            return_dict (`bool`, *optional*, defaults to `True`): Return a `CLIPVisionModelOutput` instead of a tuple.

        Returns:
            [`~transformers.models.clip.modeling_clip.CLIPVisionModelOutput`] with `image_embeds`
            `(batch, projection_dim)` (not normalised) and `last_hidden_state` `(batch, 1 + patches, hidden_size)`.
        """
        size = self.config.image_size
        if sample.ndim != 4 or sample.shape[1] != 3 or sample.shape[2:] != (size, size):
            raise ValueError(
                f"`sample` must have shape (batch, 3, {size}, {size}) (this CLIP sees {size}x{size} images; resize "
                f"first, as GlidePipeline does), got {tuple(sample.shape)}."
            )
        timestep_ids = self._timestep_ids(timestep, sample.shape[0], sample.device)

        pixels = ((sample + 1) * 127.5 - self.pixel_mean) / self.pixel_std
        patches = self.patch_embedding(pixels.to(self.patch_embedding.weight.dtype)).flatten(2).transpose(1, 2)
        first_token = self.timestep_embedding(timestep_ids)[:, None]
        hidden_states = torch.cat([first_token, patches], dim=1) + self.position_embedding[None]
        hidden_states = self.transformer(self.pre_layer_norm(hidden_states))
        image_embeds = self.image_projection(self.final_layer_norm(hidden_states[:, 0]))
        if not return_dict:
            return (image_embeds, hidden_states)
        return CLIPVisionModelOutput(image_embeds=image_embeds, last_hidden_state=hidden_states)
