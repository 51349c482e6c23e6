"""GlideUpsamplePipeline: GLIDE's text-conditional 64 -> 256 upsampler, plain or inpainting."""

from collections.abc import Callable

import torch
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.utils import replace_example_docstring

from ..models import GlideTextEncoder, GlideUNet2DModel
from .checks import check_number, one_call_at_a_time
from .guidance_interval import check_guidance_interval
from .pipeline_glide_base import GlideBasePipeline, PipelineImageInput

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> import torch
        >>> from diffusers_glide import GlidePipeline, GlideUpsamplePipeline

        >>> base = GlidePipeline.from_pretrained("./glide-base")  # converted folders or Hub repo ids
        >>> upsampler = GlideUpsamplePipeline.from_pretrained("./glide-upsample")
        >>> prompt = "an oil painting of a corgi"
        >>> generator = torch.Generator().manual_seed(0)
        >>> low_res = base(prompt, generator=generator, output_type="pt").images  # (1, 3, 64, 64) in [0, 1]
        >>> image = upsampler(prompt, image=low_res, generator=generator).images[0]  # PIL, 256 x 256
        >>> image.save("corgi_256.png")
        ```
"""


class GlideUpsamplePipeline(GlideBasePipeline):
    r"""
    Text-conditional super-resolution with GLIDE's upsampler (64x64 -> 256x256 for the released checkpoints), and
    inpainting at the high resolution with the `upsample-inpaint` checkpoint.

    The defaults reproduce OpenAI's notebooks: the low-resolution image is rounded to the uint8 grid, sampling
    starts from N(0, 1) noise scaled by the "upsample temperature" 0.997, there is no classifier-free guidance,
    and the steps are the scheduler's configured ones. Converted `upsample` folders sample with `"fast27"` DDIM
    (27 steps, as `text2im.ipynb`); converted `upsample-inpaint` folders with `"fast27"` ancestral steps (as
    `inpaint.ipynb`). To switch sampler, e.g. to DDIM:
    `pipe.scheduler = GlideScheduler.from_config(pipe.scheduler.config, sampler="ddim")`.

    Args:
        unet ([`GlideUNet2DModel`]): A super-resolution GLIDE UNet (`super_resolution=True`), optionally inpainting.
        text_encoder ([`GlideTextEncoder`]): GLIDE's text transformer.
        tokenizer ([`~transformers.PreTrainedTokenizerFast`]): GLIDE's lower-casing GPT-2 BPE tokenizer.
        scheduler ([`GlideScheduler`] or a diffusers scheduler): The sampler.
    """

    def __init__(self, unet: GlideUNet2DModel, text_encoder: GlideTextEncoder, tokenizer, scheduler):
        super().__init__(unet=unet, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler)

    # ----------------------------------------------------------------------------------------------------------
    # Inputs

    def _check_square(self, sizes: list[tuple[int, int]], name: str) -> None:
        size = self.unet.config.sample_size
        for height, width in sizes:
            if height != width:
                raise ValueError(
                    f"`{name}` must be square like the generated images ({size}x{size}), got {height}x{width} "
                    "(height x width)."
                )

    def prepare_low_res(self, image: PipelineImageInput) -> torch.Tensor:
        """The low-resolution images -> float32 NCHW in [-1, 1], rounded to the uint8 grid as GLIDE does."""
        low_res, sizes = self.image_processor.read_images(image, "image")
        self._check_square(sizes[:1], "image")
        size = self.unet.config.sample_size
        if low_res.shape[-1] > size:
            raise ValueError(
                f"`image` is the low-resolution input and must be at most the output size {size}x{size}, got "
                f"{low_res.shape[-2]}x{low_res.shape[-1]}."
            )
        return ((low_res + 1) * 127.5).round() / 127.5 - 1

    def prepare_inpaint_image(self, inpaint_image: PipelineImageInput) -> torch.Tensor:
        """The known high-resolution images -> float32 NCHW in [-1, 1] at the output size (bicubic if resized)."""
        pixels, sizes = self.image_processor.read_images(
            inpaint_image, "inpaint_image", size=self.unet.config.sample_size
        )
        self._check_square(sizes, "inpaint_image")
        return pixels

    def prepare_keep_mask(self, mask_image: PipelineImageInput) -> torch.Tensor:
        """`mask_image` in diffusers' convention (white / 1 = repaint) -> GLIDE's keep mask (1 = keep)."""
        repaint, sizes = self.image_processor.read_masks(mask_image, "mask_image", self.unet.config.sample_size)
        if len(set(sizes)) > 1:
            raise ValueError(
                f"The masks of `mask_image` must all have the same size, got (height, width) {sorted(set(sizes))}."
            )
        self._check_square(sizes, "mask_image")
        self.check_repaint_masks(repaint, sizes)
        return 1 - repaint

    @staticmethod
    def _broadcast(tensor: torch.Tensor, batch: int, name: str) -> torch.Tensor:
        """Repeat a batch of 1 to `batch` rows; any other size must already be `batch`."""
        if tensor.shape[0] == batch:
            return tensor
        if tensor.shape[0] == 1:
            return tensor.expand(batch, *tensor.shape[1:])
        raise ValueError(f"`{name}` has {tensor.shape[0]} images for a batch of {batch}: give one, or one per image.")

    def check_inputs(self, image, inpaint_image, mask_image, upsample_temp) -> None:
        if image is None:
            raise ValueError("`image` (the low-resolution image(s) to upsample) is required.")
        check_number(upsample_temp, "upsample_temp", minimum=0)
        if self.unet.config.inpainting:
            missing = [
                name for name, value in (("inpaint_image", inpaint_image), ("mask_image", mask_image)) if value is None
            ]
            if missing:
                raise ValueError(
                    f"This is an inpainting upsampler: `inpaint_image` (the known high-resolution image) and "
                    f"`mask_image` (white = repaint) are both required; missing {missing}."
                )
        elif inpaint_image is not None or mask_image is not None:
            raise ValueError(
                "`inpaint_image`/`mask_image` were given but this upsampler's UNet is not an inpainting model: load "
                "an `upsample-inpaint` checkpoint to inpaint while upsampling."
            )

    # ----------------------------------------------------------------------------------------------------------

    @torch.no_grad()
    @one_call_at_a_time
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        image: PipelineImageInput = None,
        inpaint_image: PipelineImageInput | None = None,
        mask_image: PipelineImageInput | None = None,
        negative_prompt: str | list[str] | None = None,
        num_inference_steps: int | None = None,
        timesteps: list[int] | None = None,
        respacing: str | None = None,
        guidance_scale: float = 1.0,
        upsample_temp: float = 0.997,
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
        Upsample images, conditioned on text.

        Args:
            prompt (`str` or `list[str]`, *optional*): The prompts (or give `prompt_embeds`). Longer than the
                text context (128 tokens) is truncated with a warning.
            image (`PIL.Image.Image`, `np.ndarray`, `torch.Tensor` or a list of them):
                The low-resolution images: PIL (any mode, 8 or 16 bits), numpy `(H, W, 3)` / `(N, H, W, 3)` or torch
                `(3, H, W)` / `(N, 3, H, W)` holding floats in [0, 1] (the `output_type="pt"` of [`GlidePipeline`]),
                uint8 or uint16, all of one size.
                Square, at most the output size (the UNet upsamples them bilinearly itself; 64x64 for the released
                256x256 upsampler). Rounded to the uint8 grid, as GLIDE does. One image per prompt, or one image for
                all prompts, or one prompt for all images.
            inpaint_image (same formats as `image`, *optional*):
                `upsample-inpaint` only, required there: the known HIGH-resolution image, resized to the output size
                with bicubic interpolation if needed.
            mask_image (`PIL.Image.Image`, `np.ndarray` or `torch.Tensor`, *optional*):
                `upsample-inpaint` only, required there: white / 1 where the image is repainted, black / 0 where
                `inpaint_image` is kept (diffusers' convention). PIL, numpy `(H, W)`, `(H, W, C)`, `(N, H, W, C)` or
                torch `(H, W)`, `(C, H, W)`, `(N, C, H, W)`, single channel or RGB, square; resized to the output
                size with nearest-neighbour interpolation and binarised at 0.5; it must leave at least one pixel to
                repaint.
            negative_prompt (`str` or `list[str]`, *optional*):
                Replaces the empty prompt as the unconditional input of classifier-free guidance.
            num_inference_steps (`int`, *optional*):
                Number of denoising steps. Defaults to the scheduler's configured respacing (GlideScheduler; `"fast27"`
                for converted upsamplers) or 50.
            timesteps (`list[int]`, *optional*): Explicit ORIGINAL timesteps to sample with.
            respacing (`str`, *optional*): A GLIDE respacing string ("fast27", "ddim50", "100", ...);
                GlideScheduler only.
            guidance_scale (`float`, *optional*, defaults to 1.0):
                Classifier-free guidance scale. GLIDE's upsamplers sample without guidance (1.0); values > 1 enable
                it as in [`GlidePipeline`].
            upsample_temp (`float`, *optional*, defaults to 0.997):
                GLIDE's "upsample temperature": the initial noise is N(0, 1) times this value. Not applied to `latents`.
            num_images_per_prompt (`int`, *optional*, defaults to 1): Images per (prompt, image) pair.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                Makes sampling deterministic; a list (one per image) makes each image independent of the batch.
            latents (`torch.Tensor`, *optional*):
                The initial noise x_T, `(batch, 3, size, size)`, used AS GIVEN: it is not multiplied by
                `upsample_temp` (pass `noise * upsample_temp` to reproduce GLIDE's start).
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
            [`~diffusers.pipelines.pipeline_utils.ImagePipelineOutput`] or `tuple` with the images, at the UNet's
            `sample_size`.
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
            guidance_scale,
            eta,
        )
        self.check_inputs(image, inpaint_image, mask_image, upsample_temp)
        self._guidance_interval = check_guidance_interval(guidance_interval, self.scheduler.config.num_train_timesteps)
        self._guidance_scale, self._interrupt = guidance_scale, False
        device = self._execution_device

        # 2. The low-resolution images, on the uint8 grid; pair them with the prompts
        low_res = self.prepare_low_res(image)
        num_images = low_res.shape[0]
        if num_images != num_prompts and 1 not in (num_images, num_prompts):
            raise ValueError(
                f"`image` has {num_images} images but there are {num_prompts} prompts: give one image per prompt, "
                "one image for all prompts or one prompt for all images."
            )
        pairs = max(num_images, num_prompts)
        batch = pairs * num_images_per_prompt
        self.check_batch(batch, f"num_images_per_prompt={num_images_per_prompt} for {pairs} image(s)")

        # 3. Encode the prompts once for the whole loop
        prompt_embeds, negative_prompt_embeds = self.encode_prompt(
            prompt, negative_prompt, self.do_classifier_free_guidance, 1, device, prompt_embeds, negative_prompt_embeds
        )

        def per_image(tensor, name):
            return self._broadcast(tensor, pairs, name).repeat_interleave(num_images_per_prompt, dim=0)

        prompt_embeds = per_image(prompt_embeds, "prompt_embeds")
        if negative_prompt_embeds is not None:
            negative_prompt_embeds = per_image(negative_prompt_embeds, "negative_prompt_embeds")
        conditioning = {"low_res": per_image(low_res, "image").to(device)}

        # 4. Inpainting: the known high-resolution image and GLIDE's keep mask (1 = keep)
        known = None
        if self.unet.config.inpainting:
            known_image = per_image(self.prepare_inpaint_image(inpaint_image), "inpaint_image").to(device)
            keep_mask = per_image(self.prepare_keep_mask(mask_image), "mask_image").to(device)
            conditioning.update(inpaint_image=known_image, inpaint_mask=keep_mask)
            known = (known_image, keep_mask)

        # 5. Timesteps (original indices) and initial noise (scaled by the upsample temperature)
        timesteps = self.set_sampling_timesteps(num_inference_steps, timesteps, respacing, device)
        size = self.unet.config.sample_size
        latents = self.prepare_latents(
            (batch, self.unet.config.in_channels, size, size), generator, latents, device, noise_scale=upsample_temp
        )

        # 6. Denoising loop
        sample = self.denoise(
            latents,
            timesteps,
            prompt_embeds,
            negative_prompt_embeds,
            conditioning=conditioning,
            generator=generator,
            eta=eta,
            known=known,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
        )

        # 7. Post-process
        images = self.postprocess(sample, output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return ImagePipelineOutput(images=images)
