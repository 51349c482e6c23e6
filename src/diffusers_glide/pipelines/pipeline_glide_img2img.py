"""GlideImg2ImgPipeline: text-guided image-to-image (SDEdit) with GLIDE's base model."""

from collections.abc import Callable

import torch
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.utils import replace_example_docstring

from .checks import one_call_at_a_time
from .guidance_interval import check_guidance_interval
from .pipeline_glide import GlidePipeline
from .pipeline_glide_base import PipelineImageInput
from .strength import check_strength, noised_start, strength_timesteps

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> import PIL.Image
        >>> import torch
        >>> from diffusers_glide import GlideImg2ImgPipeline

        >>> pipe = GlideImg2ImgPipeline.from_pretrained("./glide-base")  # any GlidePipeline folder or Hub repo id
        >>> image = PIL.Image.open("sketch.png")  # any size: resized to 64x64 (bicubic)
        >>> result = pipe(
        ...     "a painting of a fox in the snow", image=image, strength=0.7, generator=torch.Generator().manual_seed(0)
        ... ).images[0]
        >>> result.save("fox_64.png")

        >>> # or over the models of a loaded text-to-image pipeline, without loading them again
        >>> # pipe = GlideImg2ImgPipeline.from_pipe(text_to_image_pipe)
        ```
"""


class GlideImg2ImgPipeline(GlidePipeline):
    r"""
    Text-guided image-to-image generation with GLIDE's base model: SDEdit (Meng et al., 2021). The input image is
    noised to an intermediate timestep with the scheduler's `add_noise` and denoised from there towards the prompt;
    `strength` picks that timestep, as in diffusers' `StableDiffusionImg2ImgPipeline` and `IFImg2ImgPipeline`: of
    the `N` inference steps, the last `min(int(N * strength), N)` run. Small strengths keep the image's layout and
    colours, large ones follow the prompt. At `strength=1` the whole schedule runs from noise alone, exactly as
    [`GlidePipeline`] does from the same generator (diffusers would add `sqrt(alphas_cumprod)` ~ 5e-5 of the image
    at that first timestep; it is below 8-bit precision, so it is left out).

    It runs the models of a base (text-to-image) GLIDE folder, loads such folders (`from_pretrained`) and shares the
    components of a loaded [`GlidePipeline`] (`GlideImg2ImgPipeline.from_pipe(pipe)` or `(**pipe.components)`).
    Everything else is [`GlidePipeline`]'s: classifier-free guidance, negative prompts, CLIP guidance when the
    noised CLIP is loaded, GlideScheduler respacings and diffusers schedulers, callbacks.

    Args:
        unet ([`GlideUNet2DModel`]): A base (text-to-image) GLIDE UNet.
        text_encoder ([`GlideTextEncoder`]): GLIDE's text transformer.
        tokenizer ([`~transformers.PreTrainedTokenizerFast`]): GLIDE's lower-casing GPT-2 BPE tokenizer.
        scheduler ([`GlideScheduler`] or a diffusers scheduler): The sampler.
        clip_image_encoder ([`GlideCLIPImageEncoder`], *optional*): The noised CLIP's image tower.
        clip_text_encoder ([`GlideCLIPTextEncoder`], *optional*): The noised CLIP's text tower.
        clip_tokenizer ([`~transformers.CLIPTokenizer`], *optional*): CLIP's BPE tokenizer.
    """

    @staticmethod
    def check_image_count(num_images: int, num_prompts: int) -> int:
        """The number of distinct (image, prompt) inputs: as many images as prompts, or one of them single."""
        if num_images != num_prompts and 1 not in (num_images, num_prompts):
            raise ValueError(
                f"Got {num_images} images for {num_prompts} prompts: give one image per prompt, a single image for all "
                "prompts, or a single prompt for all images."
            )
        return max(num_images, num_prompts)

    @torch.no_grad()
    @one_call_at_a_time
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        image: PipelineImageInput = None,
        strength: float = 0.8,
        negative_prompt: str | list[str] | None = None,
        num_inference_steps: int | None = None,
        timesteps: list[int] | None = None,
        respacing: str | None = None,
        guidance_scale: float = 3.0,
        num_images_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        eta: float = 0.0,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        clip_guidance_scale: float = 0.0,
        clip_prompt: str | list[str] | None = None,
        guidance_interval: tuple[float, float] | None = None,
    ) -> ImagePipelineOutput | tuple:
        r"""
        Turn images towards text.

        Args:
            prompt (`str` or `list[str]`, *optional*): The prompts (or give `prompt_embeds`). Longer than the
                text context is truncated with a warning.
            image (`PIL.Image.Image`, `np.ndarray`, `torch.Tensor` or a list of them):
                The starting image(s), any size (resized to the model's square size with bicubic interpolation; a
                non-square image is stretched, with a warning), read by the rules of [`GlideInpaintPipeline`]'s
                `image`. One image per prompt, a single image for all prompts, or a single prompt for all images.
            strength (`float`, *optional*, defaults to 0.8):
                How far the image is noised, in (0, 1]: the last `min(int(N * strength), N)` of the `N` inference
                steps run (diffusers' rule). 1 ignores the image (text-to-image).
            negative_prompt (`str` or `list[str]`, *optional*):
                Replaces the empty prompt as the unconditional input of classifier-free guidance.
            num_inference_steps (`int`, *optional*):
                Number of denoising steps of the FULL schedule (before `strength` cuts it). Defaults to the
                scheduler's configured respacing (GlideScheduler) or 50.
            timesteps (`list[int]`, *optional*): Explicit ORIGINAL timesteps of the full schedule.
            respacing (`str`, *optional*): A GLIDE respacing string ("100", "ddim50", "fast27", ...) for the full
                schedule; GlideScheduler only.
            guidance_scale (`float`, *optional*, defaults to 3.0):
                Classifier-free guidance scale; values <= 1 disable guidance (a warning is logged below 1).
            num_images_per_prompt (`int`, *optional*, defaults to 1): Images per prompt (and per input image).
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                Makes sampling deterministic; a list (one per output image) makes each image independent of the batch.
            eta (`float`, *optional*, defaults to 0.0): DDIM noise scale (DDIM samplers only).
            prompt_embeds (`torch.Tensor`, *optional*): Precomputed text encoder states.
            negative_prompt_embeds (`torch.Tensor`, *optional*): Precomputed unconditional text encoder states.
            output_type (`str`, *optional*, defaults to `"pil"`): `"pil"`, `"np"`, `"pt"` or `"latent"`, as in
                [`GlidePipeline`].
            return_dict (`bool`, *optional*, defaults to `True`): Return an `ImagePipelineOutput`, else a tuple.
            callback_on_step_end (`Callable`, `PipelineCallback` or `MultiPipelineCallbacks`, *optional*):
                Called as `callback_on_step_end(pipe, step_index, timestep, callback_kwargs)` after every step run.
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*): The tensors put in `callback_kwargs`,
                among `"latents"`, `"prompt_embeds"`, `"negative_prompt_embeds"`.
            clip_guidance_scale (`float`, *optional*, defaults to 0.0):
                CLIP guidance scale, as in [`GlidePipeline`]; needs the noised CLIP.
            clip_prompt (`str` or `list[str]`, *optional*): The text CLIP guides towards; defaults to `prompt`.
            guidance_interval (`tuple[float, float]`, *optional*):
                Apply classifier-free guidance only at the steps whose timestep t (in the scheduler's training
                timesteps, 0 to `num_train_timesteps - 1`) has `low <= t <= high`; the other steps run the UNet on
                the conditional rows only, at half the cost (Kynkäänniemi et al., 2024). `None`: every step.

        Examples:

        Returns:
            [`~diffusers.pipelines.pipeline_utils.ImagePipelineOutput`] or `tuple` with the images, at the model's
            size.
        """
        # 1. Check inputs and read the images
        num_prompts = self.check_common_inputs(
            prompt,
            negative_prompt,
            prompt_embeds,
            negative_prompt_embeds,
            num_images_per_prompt,
            output_type,
            callback_on_step_end_tensor_inputs,
            guidance_scale,
            eta,
        )
        strength = check_strength(strength)
        size = self.unet.config.sample_size
        pixels, image_sizes = self.read_images_at_model_size(image)
        num_inputs = self.check_image_count(len(image_sizes), num_prompts)
        clip_prompts = self.check_clip_inputs(clip_guidance_scale, clip_prompt, prompt, num_prompts)
        self._guidance_interval = check_guidance_interval(guidance_interval, self.scheduler.config.num_train_timesteps)
        self._guidance_scale, self._interrupt = guidance_scale, False
        batch = num_inputs * num_images_per_prompt
        self.check_batch(batch, f"num_images_per_prompt={num_images_per_prompt} for {num_inputs} image(s)")
        device = self._execution_device

        # 2. Encode the prompts once for the whole loop (a single prompt is shared by all images)
        copies_per_prompt = num_images_per_prompt * (num_inputs // num_prompts)
        prompt_embeds, negative_prompt_embeds = self.encode_prompt(
            prompt,
            negative_prompt,
            self.do_classifier_free_guidance,
            copies_per_prompt,
            device,
            prompt_embeds,
            negative_prompt_embeds,
        )
        guidance_gradient_fn = self.clip_guidance_fn(clip_prompts, copies_per_prompt, clip_guidance_scale, device)

        # 3. The full schedule, cut by strength; the image noised to its first timestep
        all_timesteps = self.set_sampling_timesteps(num_inference_steps, timesteps, respacing, device)
        timesteps = strength_timesteps(self.scheduler, all_timesteps, strength)
        if clip_prompts is not None:
            self.check_clip_timesteps(timesteps)
        noise = self.prepare_latents((batch, self.unet.config.in_channels, size, size), generator, None, device)
        pixels = pixels.repeat_interleave(batch // pixels.shape[0], dim=0).to(device)
        latents = noised_start(self.scheduler, pixels, noise, timesteps, full=len(timesteps) == len(all_timesteps))

        # 4. Denoising loop
        sample = self.denoise(
            latents,
            timesteps,
            prompt_embeds,
            negative_prompt_embeds,
            conditioning={},
            generator=generator,
            eta=eta,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            guidance_gradient_fn=guidance_gradient_fn,
        )

        # 5. Post-process
        images = self.postprocess(sample, output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return ImagePipelineOutput(images=images)
