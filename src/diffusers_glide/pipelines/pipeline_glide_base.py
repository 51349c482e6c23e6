"""What the three GLIDE pipelines share: prompt encoding, classifier-free guidance, the denoising loop.

The loop runs with [`GlideScheduler`] (exactly GLIDE's sampler, including the x0 hook used to paste the
known region when inpainting) or with a diffusers scheduler built by `from_config` (DDPM, DDIM,
DPM-Solver, ...). Those get the guided epsilon, plus the learned variance when their config says
`variance_type="learned_range"`. When inpainting with them, the known region is pasted into x_t after
each step, noised to the next timestep.
"""

import inspect
from collections.abc import Callable

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import DiffusionPipeline
from diffusers.image_processor import VaeImageProcessor
from diffusers.utils import logging
from diffusers.utils.torch_utils import randn_tensor
from huggingface_hub.utils import validate_hf_hub_args

from ..models import GlideTextEncoder, GlideUNet2DModel
from ..schedulers import GlideScheduler
from ..tokenization import tokenize_prompts
from .hub import download_pipeline_snapshot

logger = logging.get_logger(__name__)

OUTPUT_TYPES = ("pil", "np", "pt")
PipelineImageInput = PIL.Image.Image | np.ndarray | torch.Tensor | list


# ITU-R 601-2 luma weights, as PIL's `convert("L")`, for RGB masks given as arrays or tensors.
_LUMA = (0.299, 0.587, 0.114)


def mask_to_tensor(mask: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A numpy / torch mask -> float32 `(batch, 1, height, width)` in [0, 1], RGB reduced to luma."""
    original_shape = tuple(mask.shape)
    if mask.dtype in (np.uint8, torch.uint8) and mask.max() == 1:
        logger.warning(
            "`mask_image` is a uint8 array holding only 0 and 1: uint8 masks are read in [0, 255] (255 = repaint), "
            "so nothing is repainted. Pass 255 for the pixels to repaint, or a float or bool mask."
        )
    if isinstance(mask, np.ndarray):
        if mask.dtype == np.uint8:
            mask = mask.astype(np.float32) / 255.0
        mask = torch.from_numpy(np.asarray(mask, dtype=np.float32))
        # numpy is channels last: (H, W), (H, W, C), (N, H, W, C), and diffusers' (N, H, W)
        if mask.ndim == 3:
            mask = mask[None] if mask.shape[-1] in (1, 3) else mask[..., None]
        if mask.ndim == 4:
            mask = mask.permute(0, 3, 1, 2)
    else:
        if mask.dtype == torch.uint8:
            mask = mask.float() / 255.0
        mask = mask.detach().to("cpu", torch.float32)
        # torch is channels first: (H, W), (C, H, W), (N, C, H, W), and diffusers' (N, H, W)
        if mask.ndim == 3:
            mask = mask[None] if mask.shape[0] in (1, 3) else mask[:, None]
    if mask.ndim == 2:
        mask = mask[None, None]
    if mask.ndim != 4 or mask.shape[1] not in (1, 3):
        raise ValueError(
            f"`mask_image` must be a single-channel or RGB mask, got an array of shape {original_shape} (numpy "
            "arrays are (H, W), (H, W, C), (N, H, W, C) or (N, H, W); tensors (H, W), (C, H, W), (N, C, H, W) or "
            "(N, H, W); C = 1 or 3)."
        )
    if mask.shape[1] == 3:
        mask = (mask * torch.tensor(_LUMA).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
    return mask


class GlideBasePipeline(DiffusionPipeline):
    """Shared machinery of the GLIDE pipelines (not meant to be used on its own)."""

    model_cpu_offload_seq = "text_encoder->unet"
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds"]

    def __init__(self, unet: GlideUNet2DModel, text_encoder: GlideTextEncoder, tokenizer, scheduler):
        super().__init__()
        self.register_modules(unet=unet, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler)
        # Pixel-space model: images are only normalised to / from [-1, 1], never resized here.
        self.image_processor = VaeImageProcessor(vae_scale_factor=1, do_resize=False)

    @classmethod
    @validate_hf_hub_args
    def download(cls, pretrained_model_name, **kwargs) -> str:
        r"""
        Download (or find in the Hugging Face cache) a GLIDE pipeline repo; returns its local snapshot folder.

        `from_pretrained(repo_id, ...)` calls this for a Hub repo id and then loads the folder like a local one,
        so every other `from_pretrained` argument (`dtype`, `device_map`, passed components, ...) behaves
        as in diffusers. diffusers' own `DiffusionPipeline.download` rejects our repos: it accepts component
        libraries only from diffusers / transformers or as `.py` files shipped in the repo, not installed
        modules such as `diffusers_glide.models.glide_unet` (see `hub.py`).

        Used: `cache_dir`, `force_download`, `local_files_only`, `token`, `revision`, `variant`,
        `use_safetensors` (`False` fetches pickled `.bin` weights), `proxies` (huggingface_hub < 1.0), and the
        components passed as objects, whose folders are skipped. Ignored: diffusers' custom-code arguments
        (`custom_pipeline`, `custom_revision`, `trust_remote_code`, ...): no Python file is downloaded.
        """
        expected_modules, _ = cls._get_signature_keys(cls)
        return download_pipeline_snapshot(
            pretrained_model_name,
            cache_dir=kwargs.get("cache_dir"),
            force_download=kwargs.get("force_download", False),
            proxies=kwargs.get("proxies"),
            local_files_only=kwargs.get("local_files_only"),
            token=kwargs.get("token"),
            revision=kwargs.get("revision"),
            variant=kwargs.get("variant"),
            use_safetensors=kwargs.get("use_safetensors"),
            skip_components=[name for name in expected_modules if name in kwargs],
            user_agent={"pipeline_class": cls.__name__},
        )

    # ----------------------------------------------------------------------------------------------------------
    # Inputs

    @staticmethod
    def _prompt_list(prompt, name: str = "prompt") -> list[str] | None:
        if prompt is None:
            return None
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if not isinstance(prompts, (list, tuple)) or not all(isinstance(p, str) for p in prompts):
            raise TypeError(f"`{name}` must be a string or a list of strings, got {type(prompt).__name__}.")
        if len(prompts) == 0:
            raise ValueError(f"`{name}` is an empty list: give at least one prompt.")
        return list(prompts)

    def check_common_inputs(
        self,
        prompt,
        negative_prompt,
        prompt_embeds,
        negative_prompt_embeds,
        num_images_per_prompt,
        output_type,
        callback_on_step_end_tensor_inputs,
    ) -> int:
        """Validate the arguments all GLIDE pipelines share; returns the number of prompts."""
        if (prompt is None) == (prompt_embeds is None):
            raise ValueError("Pass exactly one of `prompt` and `prompt_embeds`.")
        if negative_prompt is not None and negative_prompt_embeds is not None:
            raise ValueError("Pass at most one of `negative_prompt` and `negative_prompt_embeds`.")
        if prompt_embeds is not None:
            width = self.text_encoder.config.hidden_size
            if prompt_embeds.ndim != 3 or prompt_embeds.shape[-1] != width:
                raise ValueError(
                    f"`prompt_embeds` must be text encoder states of shape (batch, text_length, {width}), "
                    f"got {tuple(prompt_embeds.shape)}."
                )
            if negative_prompt_embeds is not None and negative_prompt_embeds.shape != prompt_embeds.shape:
                raise ValueError(
                    f"`negative_prompt_embeds` {tuple(negative_prompt_embeds.shape)} must have the shape of "
                    f"`prompt_embeds` {tuple(prompt_embeds.shape)}."
                )
            num_prompts = prompt_embeds.shape[0]
        else:
            num_prompts = len(self._prompt_list(prompt))
        negative = self._prompt_list(negative_prompt, "negative_prompt")
        if negative is not None and len(negative) not in (1, num_prompts):
            raise ValueError(
                f"`negative_prompt` has {len(negative)} prompts but `prompt` has {num_prompts}: give one, or one per prompt."
            )
        if not isinstance(num_images_per_prompt, int) or num_images_per_prompt < 1:
            raise ValueError(f"`num_images_per_prompt` must be a positive integer, got {num_images_per_prompt!r}.")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"`output_type` must be one of {OUTPUT_TYPES}, got {output_type!r}.")
        unknown = [k for k in callback_on_step_end_tensor_inputs or [] if k not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(
                f"`callback_on_step_end_tensor_inputs` {unknown} are not available; choose from {self._callback_tensor_inputs}."
            )
        return num_prompts

    def _do_guidance(self, guidance_scale: float) -> bool:
        if guidance_scale < 1:
            logger.warning(
                f"guidance_scale={guidance_scale} < 1 disables classifier-free guidance (the same as 1): only the "
                "conditional prediction is used."
            )
        return guidance_scale > 1

    # ----------------------------------------------------------------------------------------------------------
    # Text

    def _encode_texts(self, prompts: list[str], device) -> torch.Tensor:
        context = self.text_encoder.config.context_length
        input_ids, mask = tokenize_prompts(self.tokenizer, prompts, context)
        return self.text_encoder(input_ids.to(device), attention_mask=mask.to(device)).last_hidden_state

    @torch.no_grad()
    def encode_prompt(
        self,
        prompt: str | list[str] | None,
        negative_prompt: str | list[str] | None = None,
        do_classifier_free_guidance: bool = True,
        num_images_per_prompt: int = 1,
        device: torch.device | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        r"""
        Encode prompts into the text encoder states the UNet conditions on.

        Args:
            prompt (`str` or `list[str]`, *optional*): The prompts (or give `prompt_embeds`).
            negative_prompt (`str` or `list[str]`, *optional*):
                Replaces GLIDE's unconditional input, the empty prompt, in classifier-free guidance.
            do_classifier_free_guidance (`bool`, *optional*, defaults to `True`): Also encode the negative prompts.
            num_images_per_prompt (`int`, *optional*, defaults to 1): Copies of each prompt's states.
            device (`torch.device`, *optional*): Where to put the states.
            prompt_embeds (`torch.Tensor`, *optional*): Precomputed states `(batch, text_length, width)`.
            negative_prompt_embeds (`torch.Tensor`, *optional*): Precomputed unconditional states.

        Returns:
            `(prompt_embeds, negative_prompt_embeds)`, each `(batch * num_images_per_prompt, text_length, width)`;
            `negative_prompt_embeds` is `None` without guidance.
        """
        device = device or self._execution_device
        if prompt_embeds is None:
            prompt_embeds = self._encode_texts(self._prompt_list(prompt), device)
        num_prompts = prompt_embeds.shape[0]
        if do_classifier_free_guidance and negative_prompt_embeds is None:
            negative = self._prompt_list(negative_prompt, "negative_prompt") or [""]
            negative = negative * num_prompts if len(negative) == 1 else negative
            negative_prompt_embeds = self._encode_texts(negative, device)
        dtype = self.text_encoder.dtype if self.text_encoder is not None else self.unet.dtype
        prompt_embeds = prompt_embeds.to(device, dtype).repeat_interleave(num_images_per_prompt, dim=0)
        if do_classifier_free_guidance:
            negative_prompt_embeds = negative_prompt_embeds.to(device, dtype)
            negative_prompt_embeds = negative_prompt_embeds.repeat_interleave(num_images_per_prompt, dim=0)
        else:
            negative_prompt_embeds = None
        return prompt_embeds, negative_prompt_embeds

    # ----------------------------------------------------------------------------------------------------------
    # Images

    def preprocess_images(self, image: PipelineImageInput, name: str) -> torch.Tensor:
        """PIL / numpy / tensor images (single or batch, values in [0, 1] or uint8) -> float32 NCHW in [-1, 1]."""
        if isinstance(image, torch.Tensor) and image.ndim == 3:
            image = image[None]

        # uint8 pixels -> [0, 1] (VaeImageProcessor would compute 2 * x - 1 on 0..255), also inside lists.
        def to_unit(x):
            if isinstance(x, np.ndarray) and x.dtype == np.uint8:
                return x.astype(np.float32) / 255.0
            if isinstance(x, torch.Tensor) and x.dtype == torch.uint8:
                return x.float() / 255.0
            return x

        image = [to_unit(x) for x in image] if isinstance(image, (list, tuple)) else to_unit(image)
        try:
            pixels = self.image_processor.preprocess(image)
        except (ValueError, TypeError) as error:
            raise ValueError(f"Could not read `{name}`: {error}") from error
        if pixels.ndim != 4 or pixels.shape[1] != 3:
            raise ValueError(f"`{name}` must be RGB (3 channels), got a batch of shape {tuple(pixels.shape)}.")
        # Outside [-1, 1] after normalisation means floats outside [0, 1] came in (e.g. 0..255 floats).
        low, high = pixels.min().item(), pixels.max().item()
        if low < -1 - 1e-3 or high > 1 + 1e-3:
            raise ValueError(
                f"`{name}` values must be in [0, 1] (uint8 arrays in [0, 255]), got values in "
                f"[{(low + 1) / 2:.4g}, {(high + 1) / 2:.4g}]."
            )
        return pixels.float()

    @staticmethod
    def _image_items(value, name: str) -> list:
        """A single PIL image / array / tensor or a list of them -> a non-empty list, with clear errors."""
        if value is None:
            raise ValueError(f"`{name}` is required.")
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        if not items:
            raise ValueError(f"`{name}` is an empty list: give at least one.")
        for item in items:
            if not isinstance(item, (PIL.Image.Image, np.ndarray, torch.Tensor)):
                raise ValueError(
                    f"`{name}` must be PIL images, numpy arrays or torch tensors (or a list of them), got "
                    f"{type(item).__name__}."
                )
        return items

    def prepare_known_image(self, image: PipelineImageInput, name: str) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """
        Known images (inpainting) -> float32 `(batch, 3, size, size)` in [-1, 1] at the model size, and each
        image's original `(height, width)`. PIL images are resized with PIL's bicubic filter on the uint8 image
        (as OpenAI's inpainting notebook does), arrays and tensors with torch's antialiased bicubic (PIL's kernel).
        """
        size = self.unet.config.sample_size
        batches, sizes = [], []
        for item in self._image_items(image, name):
            if isinstance(item, PIL.Image.Image):
                sizes.append((item.height, item.width))
                item = item.convert("RGB")
                if item.size != (size, size):
                    item = item.resize((size, size), PIL.Image.BICUBIC)
                pixels = self.preprocess_images(item, name)
            else:
                if item.ndim not in (3, 4):
                    raise ValueError(
                        f"`{name}` arrays and tensors must be one RGB image or a batch of them, got shape "
                        f"{tuple(item.shape)}: numpy (H, W, 3) / (N, H, W, 3), torch (3, H, W) / (N, 3, H, W)."
                    )
                pixels = self.preprocess_images(item, name)
                sizes.extend([tuple(pixels.shape[-2:])] * pixels.shape[0])
                if tuple(pixels.shape[-2:]) != (size, size):
                    pixels = F.interpolate(
                        pixels, size=(size, size), mode="bicubic", align_corners=False, antialias=True
                    )
                    pixels = pixels.clamp(-1, 1)
            batches.append(pixels.to("cpu", torch.float32))
        return torch.cat(batches), sizes

    def prepare_repaint_mask(self, mask_image: PipelineImageInput) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """
        `mask_image` in diffusers' convention (white / 1 = repaint) -> the binary REPAINT mask, float32
        `(batch, 1, size, size)`, and each mask's original `(height, width)`. PIL images of any mode are converted
        to "L"; numpy `(H, W)`, `(H, W, C)`, `(N, H, W, C)`, `(N, H, W)` and torch `(H, W)`, `(C, H, W)`,
        `(N, C, H, W)`, `(N, H, W)` arrays are accepted (C = 1 or 3, RGB reduced with PIL's luma weights; floats
        in [0, 1], uint8 in [0, 255], or bool). Masks are resized with nearest-neighbour interpolation (torch's
        "nearest-exact" picks the same pixels as PIL's) and binarised at 0.5. GLIDE's keep mask is `1 - mask`.
        """
        size = self.unet.config.sample_size
        masks, sizes = [], []
        for item in self._image_items(mask_image, "mask_image"):
            if isinstance(item, PIL.Image.Image):
                item = np.asarray(item.convert("L"))
            mask = mask_to_tensor(item)
            sizes.extend([tuple(mask.shape[-2:])] * mask.shape[0])
            if tuple(mask.shape[-2:]) != (size, size):
                mask = F.interpolate(mask, size=(size, size), mode="nearest-exact")
            masks.append((mask >= 0.5).float())
        return torch.cat(masks), sizes

    def postprocess(self, sample: torch.Tensor, output_type: str):
        return self.image_processor.postprocess(sample.float(), output_type=output_type)

    def prepare_latents(self, shape, generator, latents: torch.Tensor | None, device, noise_scale: float = 1.0):
        """x_T: `latents` as given (moved to the device), else `noise_scale` * N(0, 1) from `generator`."""
        if latents is not None:
            if tuple(latents.shape) != tuple(shape):
                raise ValueError(f"`latents` must have shape {tuple(shape)}, got {tuple(latents.shape)}.")
            return latents.to(device=device, dtype=torch.float32)
        if isinstance(generator, list) and len(generator) != shape[0]:
            raise ValueError(f"Got {len(generator)} generators for a batch of {shape[0]} images: give one per image.")
        return randn_tensor(shape, generator=generator, device=device, dtype=torch.float32) * noise_scale

    # ----------------------------------------------------------------------------------------------------------
    # Sampling

    def set_sampling_timesteps(self, num_inference_steps, timesteps, respacing, device) -> torch.Tensor:
        """GlideScheduler takes a step count, original timesteps or a respacing string; others the usual args."""
        if isinstance(self.scheduler, GlideScheduler):
            given = {"num_inference_steps": num_inference_steps, "timesteps": timesteps, "respacing": respacing}
            return self.scheduler.set_timesteps(device=device, **{k: v for k, v in given.items() if v is not None})
        if respacing is not None:
            raise ValueError(
                f"`respacing` needs a GlideScheduler; this pipeline has a {type(self.scheduler).__name__}."
            )
        if timesteps is not None:
            self.scheduler.set_timesteps(timesteps=timesteps, device=device)
        else:
            self.scheduler.set_timesteps(num_inference_steps or 50, device=device)
        return self.scheduler.timesteps

    @staticmethod
    def _model_text(prompt_embeds, negative_prompt_embeds) -> torch.Tensor:
        """The text states of the UNet batch: conditional rows, then unconditional rows under guidance."""
        if negative_prompt_embeds is None:
            return prompt_embeds
        return torch.cat([prompt_embeds, negative_prompt_embeds])

    def _guided_output(self, latents, t, model_text, guidance_scale, model_conditioning):
        """The UNet output with only epsilon guided; the variance channels come from the conditional rows.

        `model_text` / `model_conditioning` are already laid out for the UNet batch (doubled under guidance).
        """
        if model_text.shape[0] == latents.shape[0]:
            return self.unet(latents, t, model_text, **model_conditioning).sample
        model_input = torch.cat([latents, latents]).to(self.unet.dtype)
        output = self.unet(model_input, t, model_text, **model_conditioning).sample.float()
        channels = latents.shape[1]
        cond, uncond = output.chunk(2)
        eps = uncond[:, :channels] + guidance_scale * (cond[:, :channels] - uncond[:, :channels])
        return torch.cat([eps, cond[:, channels:]], dim=1)

    def _make_scheduler_step(self, channels: int, generator, eta, known) -> Callable:
        """`step(model_output, t, latents, gradient=None) -> prev latents`, with what does not change per step fixed.

        `gradient` is a guidance gradient of log p(y | x_t) (CLIP guidance): GlideScheduler applies it as GLIDE
        does (mean shift for ancestral steps, score shift for DDIM); other schedulers get the score shift.

        `known` = (image, keep_mask) pastes the known region into every x0 prediction (GlideScheduler).
        """
        if isinstance(self.scheduler, GlideScheduler):
            paste = None
            if known is not None:
                image, keep = known

                def paste(x0):
                    return x0 * (1 - keep) + image * keep

            def glide_step(model_output, t, latents, gradient=None):
                return self.scheduler.step(
                    model_output,
                    t,
                    latents,
                    generator=generator,
                    eta=eta,
                    pred_original_sample_fn=paste,
                    guidance_gradient=gradient,
                ).prev_sample

            return glide_step

        # Only schedulers that take a `variance_type` read the learned variance; `from_config` copies the key
        # into the config of the others (e.g. DDIM) without using it.
        takes_variance = "variance_type" in inspect.signature(type(self.scheduler).__init__).parameters
        learned = takes_variance and self.scheduler.config.get("variance_type") in ("learned", "learned_range")
        output_channels = 2 * channels if learned else channels
        accepted = set(inspect.signature(self.scheduler.step).parameters)
        # GLIDE's DDIM re-derives epsilon from the clipped x0; diffusers' DDIM does so when asked.
        options = (("eta", eta), ("generator", generator), ("use_clipped_model_output", True))
        extra = {k: v for k, v in options if k in accepted}

        def diffusers_step(model_output, t, latents, gradient=None):
            model_output = model_output[:, :output_channels]
            if gradient is not None:
                # Score conditioning (any epsilon-predicting scheduler): eps - sqrt(1 - alpha_bar_t) * grad.
                alpha_bar = self.scheduler.alphas_cumprod[int(t)].to(model_output.device, torch.float32)
                shifted = model_output[:, :channels].float() - (1 - alpha_bar).sqrt() * gradient
                model_output = torch.cat([shifted.to(model_output.dtype), model_output[:, channels:]], dim=1)
            return self.scheduler.step(model_output, t, latents, **extra).prev_sample

        return diffusers_step

    def _paste_known_noised(self, latents, known, next_t, generator):
        """For diffusers schedulers: replace the known region of x_{t-1} by the known image noised to t-1."""
        image, keep = known
        if next_t is None:
            return latents * (1 - keep) + image * keep
        noise = randn_tensor(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
        noised = self.scheduler.add_noise(image, noise, torch.as_tensor([next_t] * latents.shape[0]))
        return latents * (1 - keep) + noised * keep

    def denoise(
        self,
        latents: torch.Tensor,
        timesteps: torch.Tensor,
        prompt_embeds: torch.Tensor,
        negative_prompt_embeds: torch.Tensor | None,
        guidance_scale: float,
        conditioning: dict,
        generator,
        eta: float,
        known: tuple[torch.Tensor, torch.Tensor] | None = None,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        guidance_gradient_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The denoising loop shared by all GLIDE pipelines.

        `guidance_gradient_fn(latents, t)`, when given, returns the scaled gradient of log p(y | x_t) at each step.
        """
        self._num_timesteps = len(timesteps)
        uses_glide_scheduler = isinstance(self.scheduler, GlideScheduler)
        scheduler_step = self._make_scheduler_step(latents.shape[1], generator, eta, known)
        # The UNet batch is [conditional rows, unconditional rows] under guidance: lay out text and images once.
        guided = negative_prompt_embeds is not None
        model_conditioning = {k: torch.cat([v, v]) if guided else v for k, v in conditioning.items()}
        model_text = self._model_text(prompt_embeds, negative_prompt_embeds)
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                model_output = self._guided_output(latents, t, model_text, guidance_scale, model_conditioning)
                gradient = guidance_gradient_fn(latents, t) if guidance_gradient_fn is not None else None
                latents = scheduler_step(model_output, t, latents, gradient)
                if known is not None and not uses_glide_scheduler:
                    next_t = timesteps[i + 1] if i + 1 < len(timesteps) else None
                    latents = self._paste_known_noised(latents, known, next_t, generator)

                if callback_on_step_end is not None:
                    local_tensors = {
                        "latents": latents,
                        "prompt_embeds": prompt_embeds,
                        "negative_prompt_embeds": negative_prompt_embeds,
                    }
                    callback_kwargs = {k: local_tensors[k] for k in callback_on_step_end_tensor_inputs or []}
                    callback_outputs = callback_on_step_end(self, i, t, callback_kwargs) or {}
                    latents = callback_outputs.get("latents", latents)
                    if "prompt_embeds" in callback_outputs or "negative_prompt_embeds" in callback_outputs:
                        prompt_embeds = callback_outputs.get("prompt_embeds", prompt_embeds)
                        negative_prompt_embeds = callback_outputs.get("negative_prompt_embeds", negative_prompt_embeds)
                        model_text = self._model_text(prompt_embeds, negative_prompt_embeds)
                progress_bar.update()
        return latents
