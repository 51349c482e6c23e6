"""CLIP guidance: the gradient of the noised CLIP's image-text similarity with respect to the noised image."""

import torch
import torch.nn.functional as F

from ..models import GlideCLIPImageEncoder

# Added to the norm as in OpenAI's CLIP code, so an all-zero embedding does not divide by zero.
EMBEDDING_NORM_EPS = 1e-12


def normalize_embeddings(embeds: torch.Tensor) -> torch.Tensor:
    """`embeds / (||embeds|| + 1e-12)` along the last dimension."""
    return embeds / (embeds.norm(dim=-1, keepdim=True) + EMBEDDING_NORM_EPS)


def clip_guidance_gradient(
    image_encoder: GlideCLIPImageEncoder,
    sample: torch.Tensor,
    timestep: int | torch.Tensor,
    text_embeds: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    r"""
    `scale * d/dx sum_b logit_scale * <normalize(image_encoder(x_b, t)), text_embeds_b>` at `x = sample`.

    This is GLIDE's `cond_fn`: row b of the result depends on row b of `sample` only. The sample is resized
    (bilinear, antialiased, inside the differentiated graph) when it is not the encoder's image size.

    Args:
        image_encoder ([`GlideCLIPImageEncoder`]): The noised CLIP image tower.
        sample (`torch.Tensor`): The noised images x_t `(batch, 3, H, W)` in the diffusion's [-1, 1] scale.
        timestep (`int` or `torch.Tensor`): The ORIGINAL timestep of `sample`, one or one per image.
        text_embeds (`torch.Tensor`): Normalised CLIP text embeddings `(batch, projection_dim)`.
        scale (`float`): The CLIP guidance scale.

    Returns:
        `torch.Tensor`: the gradient, float32, shaped like `sample`.
    """
    size = image_encoder.config.image_size
    with torch.enable_grad():
        x = sample.detach().to(image_encoder.dtype).requires_grad_(True)
        clip_input = x
        if x.shape[-2:] != (size, size):
            clip_input = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        image_embeds = normalize_embeddings(image_encoder(clip_input, timestep).image_embeds)
        similarity = image_encoder.config.logit_scale * (image_embeds * text_embeds.to(image_embeds.dtype)).sum()
        (gradient,) = torch.autograd.grad(similarity, x)
    return gradient.float() * scale
