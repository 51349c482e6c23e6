"""GlidePipeline: text -> 64x64 image with GLIDE's base model and classifier-free guidance."""

from collections.abc import Callable

import torch
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.utils import replace_example_docstring

from ..models import GlideTextEncoder, GlideUNet2DModel
from .pipeline_glide_base import GlideBasePipeline

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> import torch
        >>> from diffusers_glide import GlidePipeline

        >>> pipe = GlidePipeline.from_pretrained("./glide-base")  # a converted folder or a Hub repo id
        >>> image = pipe("an oil painting of a corgi", generator=torch.Generator().manual_seed(0)).images[0]
        >>> image.save("corgi_64.png")
        ```
"""


class GlidePipeline(GlideBasePipeline):
    r"""
    Text-to-image generation with GLIDE's 64x64 base model.

    Classifier-free guidance is GLIDE's: the unconditional input is the empty prompt (or `negative_prompt`),
    and only epsilon is guided; the variance channels come from the conditional prediction. The defaults
    reproduce OpenAI's notebook: the scheduler's respacing (100 ancestral steps for converted checkpoints),
    guidance scale 3.

    Args:
        unet ([`GlideUNet2DModel`]): A base (text-to-image) GLIDE UNet.
        text_encoder ([`GlideTextEncoder`]): GLIDE's text transformer.
        tokenizer ([`~transformers.PreTrainedTokenizerFast`]): GLIDE's lower-casing GPT-2 BPE tokenizer.
        scheduler ([`GlideScheduler`] or a diffusers scheduler): The sampler.
    """

    def __init__(self, unet: GlideUNet2DModel, text_encoder: GlideTextEncoder, tokenizer, scheduler):
        if unet is not None and (unet.config.super_resolution or unet.config.inpainting):
            kind = "an upsampling" if unet.config.super_resolution else "an inpainting"
            raise ValueError(
                f"GlidePipeline needs a base text-to-image UNet, got {kind} UNet: use GlideUpsamplePipeline or "
                "GlideInpaintPipeline."
            )
        super().__init__(unet=unet, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler)

    @torch.no_grad()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        num_inference_steps: int | None = None,
        timesteps: list[int] | None = None,
        respacing: str | None = None,
        guidance_scale: float = 3.0,
        num_images_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        eta: float = 0.0,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ) -> ImagePipelineOutput | tuple:
        r"""
        Generate images from text.

        Args:
            prompt (`str` or `list[str]`, *optional*): The prompts (or give `prompt_embeds`). Longer than the
                text context (128 tokens) is truncated with a warning.
            negative_prompt (`str` or `list[str]`, *optional*):
                Replaces the empty prompt as the unconditional input of classifier-free guidance.
            num_inference_steps (`int`, *optional*):
                Number of denoising steps. Defaults to the scheduler's configured respacing (GlideScheduler) or 50.
            timesteps (`list[int]`, *optional*): Explicit ORIGINAL timesteps to sample with.
            respacing (`str`, *optional*): A GLIDE respacing string ("100", "ddim50", "fast27", ...);
                GlideScheduler only.
            guidance_scale (`float`, *optional*, defaults to 3.0):
                Classifier-free guidance scale; values <= 1 disable guidance (a warning is logged below 1).
            num_images_per_prompt (`int`, *optional*, defaults to 1): Images per prompt.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                Makes sampling deterministic; a list (one per image) makes each image independent of the batch.
            latents (`torch.Tensor`, *optional*): The initial noise x_T, `(batch, 3, size, size)`, used as given.
            eta (`float`, *optional*, defaults to 0.0): DDIM noise scale (DDIM samplers only).
            prompt_embeds (`torch.Tensor`, *optional*): Precomputed text encoder states.
            negative_prompt_embeds (`torch.Tensor`, *optional*): Precomputed unconditional text encoder states.
            output_type (`str`, *optional*, defaults to `"pil"`): `"pil"`, `"np"` (floats in [0, 1]) or `"pt"`
                (NCHW floats in [0, 1], the input format of [`GlideUpsamplePipeline`]).
            return_dict (`bool`, *optional*, defaults to `True`): Return an `ImagePipelineOutput`, else a tuple.
            callback_on_step_end (`Callable`, *optional*):
                Called as `callback_on_step_end(pipe, step_index, timestep, callback_kwargs)` after every step; may
                return a dict with replacements (e.g. `{"latents": ...}`).
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*): The tensors put in `callback_kwargs`,
                among `"latents"`, `"prompt_embeds"`, `"negative_prompt_embeds"`.

        Examples:

        Returns:
            [`~diffusers.pipelines.pipeline_utils.ImagePipelineOutput`] or `tuple` with the images.
        """
        # 1. Check inputs
        num_prompts = self.check_common_inputs(
            prompt,
            negative_prompt,
            prompt_embeds,
            negative_prompt_embeds,
            num_images_per_prompt,
            output_type,
            callback_on_step_end_tensor_inputs,
        )
        device = self._execution_device
        do_guidance = self._do_guidance(guidance_scale)

        # 2. Encode the prompts once for the whole loop
        prompt_embeds, negative_prompt_embeds = self.encode_prompt(
            prompt, negative_prompt, do_guidance, num_images_per_prompt, device, prompt_embeds, negative_prompt_embeds
        )

        # 3. Timesteps (original indices) and initial noise
        timesteps = self.set_sampling_timesteps(num_inference_steps, timesteps, respacing, device)
        size = self.unet.config.sample_size
        batch = num_prompts * num_images_per_prompt
        latents = self.prepare_latents((batch, self.unet.config.in_channels, size, size), generator, latents, device)

        # 4. Denoising loop
        sample = self.denoise(
            latents,
            timesteps,
            prompt_embeds,
            negative_prompt_embeds,
            guidance_scale,
            conditioning={},
            generator=generator,
            eta=eta,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
        )

        # 5. Post-process
        images = self.postprocess(sample, output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return ImagePipelineOutput(images=images)
