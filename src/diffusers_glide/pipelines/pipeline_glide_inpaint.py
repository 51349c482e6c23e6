"""GlideInpaintPipeline: text-guided inpainting with GLIDE's 64x64 base-inpaint model."""

from collections.abc import Callable

import torch
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.utils import replace_example_docstring

from ..models import GlideTextEncoder, GlideUNet2DModel
from .checks import one_call_at_a_time
from .guidance_interval import check_guidance_interval
from .pipeline_glide_base import GlideBasePipeline, PipelineImageInput
from .strength import check_strength, noised_start, strength_timesteps

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> import PIL.Image
        >>> import torch
        >>> from diffusers_glide import GlideInpaintPipeline

        >>> pipe = GlideInpaintPipeline.from_pretrained("./glide-base-inpaint")  # a converted folder or a Hub repo id
        >>> image = PIL.Image.open("grass.png")  # any size: resized to 64x64 (bicubic)
        >>> mask = PIL.Image.new("L", image.size, 0)  # black = keep
        >>> mask.paste(255, (0, image.height * 2 // 5, image.width, image.height))  # white = repaint the bottom 60%
        >>> result = pipe(
        ...     "a corgi in a field", image=image, mask_image=mask, generator=torch.Generator().manual_seed(0)
        ... ).images[0]
        >>> result.save("corgi_inpainted_64.png")
        ```
"""


class GlideInpaintPipeline(GlideBasePipeline):
    r"""
    Text-guided inpainting with GLIDE's base-inpaint model (64x64 for the released checkpoint).

    **Mask convention.** `mask_image` follows diffusers: white / 1 marks the pixels to **repaint**, black / 0 the
    pixels to **keep**. GLIDE's own convention is the opposite (its `inpaint_mask` is 1 = keep); the pipeline
    converts with `keep_mask = 1 - mask` after binarising the mask at 0.5. Pass `1 - glide_mask` if you hold a
    mask in GLIDE's convention.

    The source image and the mask are resized to the model's size (square): the image with bicubic
    interpolation, as OpenAI's inpainting notebook prepares its source image, the mask with nearest-neighbour
    interpolation, so it stays binary. The UNet sees the image (multiplied by the keep mask inside the model) and
    the keep mask at every step, and, as in GLIDE, the known pixels overwrite every x0 prediction inside the kept
    region, so the output reproduces the kept pixels of the (resized) image. With a diffusers scheduler swapped
    in (e.g. `DDIMScheduler.from_config(pipe.scheduler.config)`), the known region is instead pasted into x_t
    after each step, noised to the next timestep, and into the final output.

    **Sketch-guided inpainting.** With `strength` < 1 the masked region starts from `image` itself (a rough colour
    sketch painted into the mask, say) noised to the timestep at `strength` of the schedule, instead of pure noise
    (SDEdit, as GLIDE's paper edits with sketches); the cut of the timesteps is diffusers' img2img rule. The
    default `strength=1` is GLIDE's inpainting. [`apply_edits`] chains edits, each on the previous result.

    Classifier-free guidance is GLIDE's (the unconditional input is the empty prompt, or `negative_prompt`; only
    epsilon is guided). The defaults follow OpenAI's inpainting notebook: guidance scale 5 and the scheduler's
    respacing (100 ancestral steps for converted checkpoints).

    Args:
        unet ([`GlideUNet2DModel`]): An inpainting, non-super-resolution GLIDE UNet (`inpainting=True`).
        text_encoder ([`GlideTextEncoder`]): GLIDE's text transformer.
        tokenizer ([`~transformers.PreTrainedTokenizerFast`]): GLIDE's lower-casing GPT-2 BPE tokenizer.
        scheduler ([`GlideScheduler`] or a diffusers scheduler): The sampler.
    """

    def __init__(self, unet: GlideUNet2DModel, text_encoder: GlideTextEncoder, tokenizer, scheduler):
        super().__init__(unet=unet, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler)

    # ----------------------------------------------------------------------------------------------------------
    # Inputs

    @staticmethod
    def check_image_batches(image_sizes, mask_sizes, num_prompts: int) -> int:
        """Validate the image / mask / prompt counts and the mask shapes; returns the number of distinct inputs."""
        num_images, num_masks = len(image_sizes), len(mask_sizes)
        if num_images != num_masks and 1 not in (num_images, num_masks):
            raise ValueError(
                f"`image` has {num_images} images but `mask_image` has {num_masks} masks: give as many masks as "
                "images, or a single image or a single mask for all."
            )
        num_pairs = max(num_images, num_masks)
        if num_pairs != num_prompts and 1 not in (num_pairs, num_prompts):
            raise ValueError(
                f"Got {num_pairs} images to inpaint (`image` / `mask_image`) for {num_prompts} prompts: give one "
                "image per prompt, a single image for all prompts, or a single prompt for all images."
            )
        for k in range(num_pairs):
            (height, width) = image_sizes[k if num_images > 1 else 0]
            (mask_height, mask_width) = mask_sizes[k if num_masks > 1 else 0]
            if height * mask_width != width * mask_height:
                raise ValueError(
                    f"`mask_image` of size {mask_height}x{mask_width} (height x width) is not matching the image "
                    f"{k} of size {height}x{width}: the mask must have the image's aspect ratio (any resolution, "
                    "usually the image's own size)."
                )
        return max(num_pairs, num_prompts)

    # ----------------------------------------------------------------------------------------------------------
    # Sampling

    @torch.no_grad()
    @one_call_at_a_time
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        image: PipelineImageInput = None,
        mask_image: PipelineImageInput = None,
        strength: float = 1.0,
        negative_prompt: str | list[str] | None = None,
        num_inference_steps: int | None = None,
        timesteps: list[int] | None = None,
        respacing: str | None = None,
        guidance_scale: float = 5.0,
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
        guidance_interval: tuple[float, float] | None = None,
    ) -> ImagePipelineOutput | tuple:
        r"""
        Repaint the masked region of images from text.

        Args:
            prompt (`str` or `list[str]`, *optional*): The prompts (or give `prompt_embeds`). Longer than the
                text context (128 tokens) is truncated with a warning.
            image (`PIL.Image.Image`, `np.ndarray`, `torch.Tensor` or a list of them):
                The image(s) to inpaint, any size (resized to the model's square size with bicubic interpolation):
                PIL images of any mode (8 or 16 bits; alpha composited over black), numpy `(H, W, 3)` /
                `(N, H, W, 3)` or torch `(3, H, W)` / `(N, 3, H, W)` holding floats in [0, 1], uint8 or uint16
                (see docs/pipelines.md, "Input rules").
            mask_image (`PIL.Image.Image`, `np.ndarray`, `torch.Tensor` or a list of them):
                **White / 1 = repaint, black / 0 = keep** (diffusers' convention; GLIDE's is the opposite). PIL
                images of any mode (read as grayscale), numpy `(H, W)`, `(H, W, C)`, `(N, H, W, C)`, `(N, H, W)` or
                torch `(H, W)`, `(C, H, W)`, `(N, C, H, W)`, `(N, H, W)` with C = 1 or 3 (RGB is reduced to grayscale
                with PIL's luma weights), floats in [0, 1], uint8, uint16 or bool. Any resolution with the image's
                aspect ratio: resized with nearest-neighbour interpolation, then binarised at 0.5; it must leave at
                least one pixel to repaint at the model's size.
                `image` and `mask_image` hold the same number of images, or one of them a single one (used for
                all); that number must match the number of prompts, or one side must be a single one.
            strength (`float`, *optional*, defaults to 1.0):
                Sketch-guided inpainting, in (0, 1]. 1 (GLIDE's inpainting) starts the masked region from pure
                noise. Below 1 it starts from `image` itself, noised to the timestep at `strength` of the schedule
                (the last `min(int(N * strength), N)` of the `N` steps run, diffusers' img2img rule), so a rough
                colour sketch painted into the masked region of `image` guides the colours and layout there (SDEdit);
                the kept region is pasted as at strength 1.
            negative_prompt (`str` or `list[str]`, *optional*):
                Replaces the empty prompt as the unconditional input of classifier-free guidance.
            num_inference_steps (`int`, *optional*):
                Number of denoising steps. Defaults to the scheduler's configured respacing (GlideScheduler) or 50.
            timesteps (`list[int]`, *optional*): Explicit ORIGINAL timesteps to sample with.
            respacing (`str`, *optional*): A GLIDE respacing string ("100", "ddim50", "fast27", ...);
                GlideScheduler only.
            guidance_scale (`float`, *optional*, defaults to 5.0):
                Classifier-free guidance scale (5 in OpenAI's inpainting notebook); values <= 1 disable guidance
                (a warning is logged below 1).
            num_images_per_prompt (`int`, *optional*, defaults to 1): Images per prompt (and per input image).
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                Makes sampling deterministic; a list (one per output image) makes each image independent of the batch.
            latents (`torch.Tensor`, *optional*): The sample the loop starts from, `(batch, 3, size, size)`, used as
                given: the initial noise x_T, or with `strength` < 1 the noised image at the first timestep that
                runs (instead of `image` noised with the generator's noise).
            eta (`float`, *optional*, defaults to 0.0): DDIM noise scale (DDIM samplers only).
            prompt_embeds (`torch.Tensor`, *optional*): Precomputed text encoder states.
            negative_prompt_embeds (`torch.Tensor`, *optional*): Precomputed unconditional text encoder states.
            output_type (`str`, *optional*, defaults to `"pil"`): `"pil"`, `"np"` (floats in [0, 1]), `"pt"`
                (NCHW floats in [0, 1]) or `"latent"` (the raw NCHW sample in [-1, 1]).
            return_dict (`bool`, *optional*, defaults to `True`): Return an `ImagePipelineOutput`, else a tuple.
            callback_on_step_end (`Callable`, `PipelineCallback` or `MultiPipelineCallbacks`, *optional*):
                Called as `callback_on_step_end(pipe, step_index, timestep, callback_kwargs)` after every step; may
                return a dict with replacements of the same shapes (e.g. `{"latents": ...}`), or None.
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*): The tensors put in `callback_kwargs`,
                among `"latents"`, `"prompt_embeds"`, `"negative_prompt_embeds"`.
            guidance_interval (`tuple[float, float]`, *optional*):
                Apply classifier-free guidance only at the steps whose timestep t (in the scheduler's training
                timesteps, 0 to `num_train_timesteps - 1`) has `low <= t <= high`; the other steps run the UNet on
                the conditional rows only, at half the cost (Kynkäänniemi et al., 2024). `None`: every step.

        Examples:

        Returns:
            [`~diffusers.pipelines.pipeline_utils.ImagePipelineOutput`] or `tuple` with the images. The output is
            at the model's size, with the kept pixels of the resized `image`.
        """
        # 1. Check inputs and read the images and masks
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
        pixels, image_sizes = self.read_images_at_model_size(image, crop_hint="it (and the mask)")
        repaint, mask_sizes = self.image_processor.read_masks(mask_image, "mask_image", size)
        num_inputs = self.check_image_batches(image_sizes, mask_sizes, num_prompts)
        self.check_repaint_masks(repaint, mask_sizes)
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

        # 3. The known image and GLIDE's keep mask (1 = keep), one row per generated image
        pixels = pixels.repeat_interleave(batch // pixels.shape[0], dim=0).to(device)
        keep_mask = (1 - repaint).repeat_interleave(batch // repaint.shape[0], dim=0).to(device)

        # 4. Timesteps (original indices, cut by strength) and the starting sample: noise, or the noised image
        all_timesteps = self.set_sampling_timesteps(num_inference_steps, timesteps, respacing, device)
        timesteps = strength_timesteps(self.scheduler, all_timesteps, strength)
        shape = (batch, self.unet.config.in_channels, size, size)
        if latents is None:
            noise = self.prepare_latents(shape, generator, None, device)
            latents = noised_start(self.scheduler, pixels, noise, timesteps, len(timesteps) == len(all_timesteps))
        else:
            latents = self.prepare_latents(shape, generator, latents, device)

        # 5. Denoising loop: the UNet sees the image and the keep mask; the known region overwrites every x0
        sample = self.denoise(
            latents,
            timesteps,
            prompt_embeds,
            negative_prompt_embeds,
            conditioning={"inpaint_image": pixels, "inpaint_mask": keep_mask},
            generator=generator,
            eta=eta,
            known=(pixels, keep_mask),
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
        )

        # 6. Post-process
        images = self.postprocess(sample, output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return ImagePipelineOutput(images=images)
