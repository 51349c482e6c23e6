"""GlidePipeline: text -> 64x64 image with GLIDE's base model, classifier-free guidance and CLIP guidance."""

import os
from collections.abc import Callable

import torch
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.utils import logging, replace_example_docstring
from transformers import CLIPTokenizer

from ..clip_tokenization import tokenize_clip_prompts
from ..models import GlideCLIPImageEncoder, GlideCLIPTextEncoder, GlideTextEncoder, GlideUNet2DModel
from ..tokenization import prompt_list
from .checks import check_hub_id, check_number, one_call_at_a_time
from .clip_guidance import clip_guidance_gradient, normalize_embeddings
from .component_slots import refuse_remote_code
from .guidance_interval import check_guidance_interval
from .pipeline_glide_base import GlideBasePipeline

logger = logging.get_logger(__name__)

CLIP_COMPONENTS = ("clip_image_encoder", "clip_text_encoder", "clip_tokenizer")

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> import torch
        >>> from diffusers_glide import GlidePipeline

        >>> pipe = GlidePipeline.from_pretrained("./glide-base")  # a converted folder or a Hub repo id
        >>> image = pipe("an oil painting of a corgi", generator=torch.Generator().manual_seed(0)).images[0]
        >>> image.save("corgi_64.png")

        >>> # CLIP guidance with GLIDE's noised CLIP (converted with `--model_type clip`), as in OpenAI's notebook
        >>> pipe.load_clip_guidance("./glide-clip")
        >>> image = pipe("an oil painting of a corgi", guidance_scale=1.0, clip_guidance_scale=3.0).images[0]
        ```
"""


class GlidePipeline(GlideBasePipeline):
    r"""
    Text-to-image generation with GLIDE's 64x64 base model, guided by classifier-free guidance, CLIP guidance or both.

    Classifier-free guidance is GLIDE's: the unconditional input is the empty prompt (or `negative_prompt`),
    and only epsilon is guided; the variance channels come from the conditional prediction. The defaults
    reproduce OpenAI's notebook: the scheduler's respacing (100 ancestral steps for converted checkpoints),
    guidance scale 3.

    CLIP guidance is GLIDE's other method. It needs the optional noised-CLIP components (pass them to `__init__` /
    `from_pretrained`, or call [`~GlidePipeline.load_clip_guidance`]) and a `clip_guidance_scale` > 0. It lives in
    this pipeline rather than a separate one because it only adds a gradient to the same loop: with a GlideScheduler
    ancestral steps shift the mean by the learned variance times the gradient, DDIM steps (and any diffusers
    scheduler) shift epsilon by `-sqrt(1 - alpha_bar_t)` times it. Unlike OpenAI's code, it combines with
    classifier-free guidance: epsilon is guided first, then the CLIP gradient is applied.

    Args:
        unet ([`GlideUNet2DModel`]): A base (text-to-image) GLIDE UNet.
        text_encoder ([`GlideTextEncoder`]): GLIDE's text transformer.
        tokenizer ([`~transformers.PreTrainedTokenizerFast`]): GLIDE's lower-casing GPT-2 BPE tokenizer.
        scheduler ([`GlideScheduler`] or a diffusers scheduler): The sampler.
        clip_image_encoder ([`GlideCLIPImageEncoder`], *optional*): The noised CLIP's image tower.
        clip_text_encoder ([`GlideCLIPTextEncoder`], *optional*): The noised CLIP's text tower.
        clip_tokenizer ([`~transformers.CLIPTokenizer`], *optional*): CLIP's BPE tokenizer.
    """

    _optional_components = list(CLIP_COMPONENTS)
    model_cpu_offload_seq = "clip_text_encoder->text_encoder->clip_image_encoder->unet"

    def __init__(
        self,
        unet: GlideUNet2DModel,
        text_encoder: GlideTextEncoder,
        tokenizer,
        scheduler,
        clip_image_encoder: GlideCLIPImageEncoder | None = None,
        clip_text_encoder: GlideCLIPTextEncoder | None = None,
        clip_tokenizer: CLIPTokenizer | None = None,
    ):
        super().__init__(unet=unet, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler)
        self.register_modules(
            clip_image_encoder=clip_image_encoder, clip_text_encoder=clip_text_encoder, clip_tokenizer=clip_tokenizer
        )

    def load_clip_guidance(self, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> None:
        r"""
        Load the noised CLIP components (`clip_image_encoder`, `clip_text_encoder`, `clip_tokenizer` subfolders, as
        the converter's `--model_type clip` writes them) into this pipeline, on its device.

        Args:
            pretrained_model_name_or_path (`str` or `os.PathLike`): A local folder or a Hub repo id.
            kwargs: Passed to each component's `from_pretrained` (e.g. `dtype` / `torch_dtype`, `cache_dir`, `token`,
                `revision`, `local_files_only`); the dtype only applies to the two models.
        """
        refuse_remote_code(kwargs, "load_clip_guidance")
        tokenizer_kwargs = {k: v for k, v in kwargs.items() if k not in ("dtype", "torch_dtype")}
        source = os.fspath(pretrained_model_name_or_path)
        if not os.path.isdir(source):
            check_hub_id(source, "noised-CLIP folder")
        elif missing := [name for name in CLIP_COMPONENTS if not os.path.isdir(os.path.join(source, name))]:
            raise OSError(
                f"{source} is not a noised-CLIP folder: it lacks {', '.join(name + '/' for name in missing)} (expected "
                "the output of `diffusers-glide convert --model_type clip`)."
            )
        device = self.device
        components = {
            "clip_image_encoder": GlideCLIPImageEncoder.from_pretrained(
                pretrained_model_name_or_path, subfolder="clip_image_encoder", **kwargs
            ).to(device),
            "clip_text_encoder": GlideCLIPTextEncoder.from_pretrained(
                pretrained_model_name_or_path, subfolder="clip_text_encoder", **kwargs
            ).to(device),
            "clip_tokenizer": CLIPTokenizer.from_pretrained(
                pretrained_model_name_or_path, subfolder="clip_tokenizer", **tokenizer_kwargs
            ),
        }
        self.register_modules(**components)

    @property
    def has_clip_guidance(self) -> bool:
        """Whether the three noised-CLIP components are loaded."""
        return all(getattr(self, name, None) is not None for name in CLIP_COMPONENTS)

    def check_clip_inputs(self, clip_guidance_scale: float, clip_prompt, prompt, num_prompts: int) -> list[str] | None:
        """Validate the CLIP guidance arguments; returns the CLIP prompts (one per prompt), or None when disabled."""
        if check_number(clip_guidance_scale, "clip_guidance_scale", minimum=0) == 0:
            if clip_prompt is not None:
                logger.warning("`clip_prompt` is ignored: CLIP guidance is off (`clip_guidance_scale` is 0).")
            return None
        if not self.has_clip_guidance:
            missing = [name for name in CLIP_COMPONENTS if getattr(self, name, None) is None]
            raise ValueError(
                f"`clip_guidance_scale` > 0 needs the noised CLIP, but this pipeline has no {', '.join(missing)}: "
                "load them with `pipe.load_clip_guidance(<folder converted with --model_type clip>)` or pass them to "
                "`from_pretrained`."
            )
        if clip_prompt is None and prompt is None:
            raise ValueError("CLIP guidance with `prompt_embeds` needs the text for CLIP: pass `clip_prompt`.")
        clip_prompts = (
            prompt_list(clip_prompt, "clip_prompt") if clip_prompt is not None else prompt_list(prompt, "prompt")
        )
        if len(clip_prompts) == 1:
            clip_prompts = clip_prompts * num_prompts
        if len(clip_prompts) != num_prompts:
            raise ValueError(
                f"`clip_prompt` has {len(clip_prompts)} prompts for {num_prompts} prompts: give one, or one per prompt."
            )
        if len(self.clip_tokenizer) > self.clip_text_encoder.config.vocab_size:
            raise ValueError(
                f"The CLIP tokenizer has {len(self.clip_tokenizer)} tokens but the CLIP text encoder only "
                f"{self.clip_text_encoder.config.vocab_size} token embeddings: they do not belong together."
            )
        clip_steps = self.clip_image_encoder.config.num_train_timesteps
        if self.scheduler.config.num_train_timesteps != clip_steps:
            raise ValueError(
                f"The noised CLIP was trained on {clip_steps} diffusion steps but the scheduler has "
                f"{self.scheduler.config.num_train_timesteps}: its timestep embedding would not match."
            )
        if not hasattr(self.scheduler, "alphas_cumprod"):
            raise ValueError(
                f"CLIP guidance shifts the noise prediction by sqrt(1 - alphas_cumprod); "
                f"{type(self.scheduler).__name__} has no `alphas_cumprod`."
            )
        clip_size, size = self.clip_image_encoder.config.image_size, self.unet.config.sample_size
        if clip_size != size:
            logger.warning(
                f"The noised CLIP sees {clip_size}x{clip_size} images but the UNet makes {size}x{size}: x_t is "
                f"resized (bilinear) to {clip_size}x{clip_size} before CLIP, and the gradient flows back through "
                "the resize."
            )
        return clip_prompts

    @torch.no_grad()
    def encode_clip_prompt(
        self, clip_prompts: str | list[str], num_images_per_prompt: int = 1, device: torch.device | None = None
    ) -> torch.Tensor:
        r"""
        Normalised noised-CLIP text embeddings `(len(clip_prompts) * num_images_per_prompt, projection_dim)`.

        Prompts are tokenized like GLIDE's CLIP (`<|startoftext|>`, at most 75 tokens, `<|endoftext|>`, zero
        padding to 77; longer prompts are truncated with a warning).
        """
        device = device or self._execution_device
        context = self.clip_text_encoder.config.context_length
        input_ids, attention_mask = tokenize_clip_prompts(self.clip_tokenizer, clip_prompts, context)
        text_embeds = self.clip_text_encoder(input_ids.to(device), attention_mask=attention_mask.to(device))
        text_embeds = normalize_embeddings(text_embeds.text_embeds.float())
        return text_embeds.repeat_interleave(num_images_per_prompt, dim=0)

    def clip_guidance_fn(
        self, clip_prompts: list[str] | None, num_images_per_prompt: int, clip_guidance_scale: float, device
    ) -> Callable | None:
        """`fn(latents, t)` -> the scaled CLIP guidance gradient at each step (the prompts encoded once), or None
        when CLIP guidance is off (`clip_prompts` None, as `check_clip_inputs` returns then)."""
        if clip_prompts is None:
            return None
        clip_text_embeds = self.encode_clip_prompt(clip_prompts, num_images_per_prompt, device)

        def guidance_gradient_fn(latents, t):
            return clip_guidance_gradient(self.clip_image_encoder, latents, t, clip_text_embeds, clip_guidance_scale)

        return guidance_gradient_fn

    def check_clip_timesteps(self, timesteps: torch.Tensor) -> None:
        """The noised CLIP looks timesteps up in a table: they must be integer original steps in its range (checked
        once per call on the CPU; the encoder itself does not check values, which would sync the device each step)."""
        steps = timesteps.cpu()
        limit = self.clip_image_encoder.config.num_train_timesteps
        if steps.is_floating_point() and not torch.equal(steps, steps.round()):
            raise ValueError(f"CLIP guidance needs integer timesteps, but the scheduler gives {steps.tolist()}.")
        if steps.min() < 0 or steps.max() >= limit:
            raise ValueError(
                f"CLIP guidance needs timesteps in [0, {limit}), but the scheduler gives {steps.tolist()}."
            )

    @torch.no_grad()
    @one_call_at_a_time
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
        clip_guidance_scale: float = 0.0,
        clip_prompt: str | list[str] | None = None,
        guidance_interval: tuple[float, float] | None = None,
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
                Classifier-free guidance scale; values <= 1 disable guidance (a warning is logged below 1). Read at
                every step as `pipe.guidance_scale`, so a callback may change it (`pipe._guidance_scale = ...`).
            num_images_per_prompt (`int`, *optional*, defaults to 1): Images per prompt.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                Makes sampling deterministic; a list (one per image) makes each image independent of the batch.
            latents (`torch.Tensor`, *optional*): The initial noise x_T, `(batch, 3, size, size)`, used as given.
            eta (`float`, *optional*, defaults to 0.0): DDIM noise scale (DDIM samplers only).
            prompt_embeds (`torch.Tensor`, *optional*): Precomputed text encoder states.
            negative_prompt_embeds (`torch.Tensor`, *optional*): Precomputed unconditional text encoder states.
            output_type (`str`, *optional*, defaults to `"pil"`): `"pil"`, `"np"` (floats in [0, 1]), `"pt"`
                (NCHW floats in [0, 1], the input format of [`GlideUpsamplePipeline`]) or `"latent"` (the raw NCHW
                sample in [-1, 1]: GLIDE has no latent space).
            return_dict (`bool`, *optional*, defaults to `True`): Return an `ImagePipelineOutput`, else a tuple.
            callback_on_step_end (`Callable`, `PipelineCallback` or `MultiPipelineCallbacks`, *optional*):
                Called as `callback_on_step_end(pipe, step_index, timestep, callback_kwargs)` after every step; may
                return a dict with replacements of the same shapes (e.g. `{"latents": ...}`), or None.
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*): The tensors put in `callback_kwargs`,
                among `"latents"`, `"prompt_embeds"`, `"negative_prompt_embeds"`.
            clip_guidance_scale (`float`, *optional*, defaults to 0.0):
                CLIP guidance scale (OpenAI's notebook uses 3.0, with `guidance_scale=1.0`); 0 disables it. Needs the
                noised-CLIP components. Each step adds `clip_guidance_scale` times the gradient, with respect to
                x_t, of `logit_scale` (100) times the cosine similarity between the CLIP embedding of x_t at its
                original timestep and the CLIP embedding of the prompt. Combines with classifier-free guidance.
            clip_prompt (`str` or `list[str]`, *optional*):
                The text CLIP guides towards (one, or one per prompt); defaults to `prompt`. Required with
                `prompt_embeds`.
            guidance_interval (`tuple[float, float]`, *optional*):
                Apply classifier-free guidance only at the steps whose timestep t (in the scheduler's training
                timesteps, 0 to `num_train_timesteps - 1`) has `low <= t <= high`; the other steps run the UNet on
                the conditional rows only, at half the cost (Kynkäänniemi et al., 2024). `None`: every step.

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
            guidance_scale,
            eta,
        )
        clip_prompts = self.check_clip_inputs(clip_guidance_scale, clip_prompt, prompt, num_prompts)
        self._guidance_interval = check_guidance_interval(guidance_interval, self.scheduler.config.num_train_timesteps)
        self._guidance_scale, self._interrupt = guidance_scale, False
        batch = num_prompts * num_images_per_prompt
        self.check_batch(batch, f"num_images_per_prompt={num_images_per_prompt} for {num_prompts} prompt(s)")
        device = self._execution_device

        # 2. Encode the prompts (GLIDE's text encoder, and CLIP's for CLIP guidance) once for the whole loop
        prompt_embeds, negative_prompt_embeds = self.encode_prompt(
            prompt,
            negative_prompt,
            self.do_classifier_free_guidance,
            num_images_per_prompt,
            device,
            prompt_embeds,
            negative_prompt_embeds,
        )

        guidance_gradient_fn = self.clip_guidance_fn(clip_prompts, num_images_per_prompt, clip_guidance_scale, device)

        # 3. Timesteps (original indices) and initial noise
        timesteps = self.set_sampling_timesteps(num_inference_steps, timesteps, respacing, device)
        if clip_prompts is not None:
            self.check_clip_timesteps(timesteps)
        size = self.unet.config.sample_size
        latents = self.prepare_latents((batch, self.unet.config.in_channels, size, size), generator, latents, device)

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
