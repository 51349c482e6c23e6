"""What the GLIDE pipelines share for sampling: input rules, prompt encoding, classifier-free guidance, the
denoising loop. Loading from a folder or the Hub (`from_pretrained`, `from_pipe`, `download`) is in `hub.py`.

The guidance scale is read at every step (callbacks may change it, as in diffusers); NaN / infinity produced by a
step stops the call with an error naming it. The loop runs with [`GlideScheduler`] (exactly GLIDE's sampler, including the x0 hook used to paste the
known region when inpainting) or with a diffusers scheduler built by `from_config` (DDPM, DDIM,
DPM-Solver, ...). Those get the guided epsilon, plus the learned variance when their config says
`variance_type="learned_range"`. When inpainting with them, the known region is pasted into x_t after
each step, noised to the next timestep.
"""

import functools
import inspect
from collections.abc import Callable

import numpy as np
import PIL.Image
import torch
from diffusers import DDPMScheduler, DiffusionPipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.utils import logging
from diffusers.utils.torch_utils import randn_tensor

from ..models import GlideTextEncoder, GlideUNet2DModel
from ..schedulers import GlideScheduler
from ..tokenization import prompt_list, tokenize_prompts
from ..variants import models_pipeline_class, variant_of_unet_config
from .checks import (
    check_distinct_timesteps,
    check_generator,
    check_number,
    check_prediction_type,
    check_tensor,
)
from .guidance_interval import guided_steps
from .hub import GlidePipelineLoadingMixin
from .image_processing import GlideImageProcessor
from .memory import check_batch_fits

logger = logging.get_logger(__name__)

OUTPUT_TYPES = ("pil", "np", "pt", "latent")
PipelineImageInput = PIL.Image.Image | np.ndarray | torch.Tensor | list


class _UNetBatch:
    """The UNet's text and conditioning inputs of a call, laid out once for the loop: the conditional rows, and
    under classifier-free guidance [conditional rows, unconditional rows]."""

    def __init__(self, prompt_embeds, negative_prompt_embeds, conditioning: dict):
        self.conditioning = conditioning
        self.set_text(prompt_embeds, negative_prompt_embeds)

    @functools.cached_property
    def guided_conditioning(self) -> dict:
        return {name: torch.cat([value, value]) for name, value in self.conditioning.items()}

    def set_text(self, prompt_embeds, negative_prompt_embeds) -> None:
        self.prompt_embeds, self.negative_prompt_embeds = prompt_embeds, negative_prompt_embeds
        self.guided_text = (
            None if negative_prompt_embeds is None else torch.cat([prompt_embeds, negative_prompt_embeds])
        )


class _NonFiniteSteps:
    """Stops sampling with an error naming the first step whose UNet output or new sample holds NaN / infinity.

    On the CPU a step is checked as soon as it ran (reading the flag costs nothing). On an accelerator that read
    would wait for the device at every step, so the flags are kept as device tensors and read once, after the loop.
    """

    checked_at_once_on = ("cpu",)  # device types whose flags are read at every step

    def __init__(self, timesteps, scheduler):
        self.timesteps, self.scheduler = timesteps, scheduler
        self.steps, self.flags = [], []

    def record(self, step: int, model_output: torch.Tensor, latents: torch.Tensor) -> None:
        flags = torch.stack([~torch.isfinite(model_output).all(), ~torch.isfinite(latents).all()])
        self.steps.append(step)
        self.flags.append(flags)
        if latents.device.type in self.checked_at_once_on and flags.any():
            self.check()

    def check(self) -> None:
        if not self.flags:
            return
        flags = torch.stack(self.flags).cpu()
        bad_steps = flags.any(dim=1).nonzero()
        if len(bad_steps) == 0:
            return
        row = int(bad_steps[0])
        step = self.steps[row]
        culprit = (
            "the UNet output was not finite (float16 weights on a CPU, or weights holding NaN?)"
            if flags[row, 0]
            else f"the UNet output was finite but {type(self.scheduler).__name__}.step's result was not"
        )
        raise FloatingPointError(
            f"Sampling produced NaN or infinite values at step {step + 1} of {len(self.timesteps)} (timestep "
            f"{int(self.timesteps[step])}): {culprit}. No image is returned."
        )


class GlideBasePipeline(GlidePipelineLoadingMixin, DiffusionPipeline):
    """Shared machinery of the GLIDE pipelines; `GlideBasePipeline.from_pretrained` loads any of them."""

    model_cpu_offload_seq = "text_encoder->unet"
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds"]

    def __init__(self, unet: GlideUNet2DModel, text_encoder: GlideTextEncoder | None, tokenizer, scheduler):
        expected = self.glide_class_name()
        if unet is not None and expected is not None:
            variant = variant_of_unet_config(unet.config)
            if variant.pipeline_class != models_pipeline_class(expected):
                raise ValueError(
                    f"{expected} cannot run this UNet: it is a GLIDE {variant.model_type!r} model (super_resolution="
                    f"{unet.config.super_resolution}, inpainting={unet.config.inpainting}); use "
                    f"{variant.pipeline_class}."
                )
        super().__init__()
        self.register_modules(unet=unet, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler)
        self.image_processor = GlideImageProcessor()
        self._guidance_scale, self._num_timesteps, self._interrupt = 1.0, 0, False
        self._guidance_interval: tuple[float, float] | None = None

    # ----------------------------------------------------------------------------------------------------------
    # Per-call state, as diffusers pipelines expose it (callbacks may change `_guidance_scale` between steps)

    @property
    def guidance_scale(self) -> float:
        return self._guidance_scale

    @property
    def do_classifier_free_guidance(self) -> bool:
        return self._guidance_scale > 1

    @property
    def num_timesteps(self) -> int:
        return self._num_timesteps

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    # ----------------------------------------------------------------------------------------------------------
    # Inputs

    def check_common_inputs(
        self,
        prompt,
        negative_prompt,
        prompt_embeds,
        negative_prompt_embeds,
        num_images_per_prompt,
        output_type,
        callback_on_step_end_tensor_inputs,
        guidance_scale,
        eta,
    ) -> int:
        """Validate the arguments all GLIDE pipelines share; returns the number of prompts."""
        if (prompt is None) == (prompt_embeds is None):
            raise ValueError("Pass exactly one of `prompt` and `prompt_embeds`.")
        if negative_prompt is not None and negative_prompt_embeds is not None:
            raise ValueError("Pass at most one of `negative_prompt` and `negative_prompt_embeds`.")
        if prompt_embeds is not None:
            width = self.unet.config.encoder_hid_dim
            check_tensor(prompt_embeds, "prompt_embeds")
            if prompt_embeds.ndim != 3 or prompt_embeds.shape[-1] != width:
                raise ValueError(
                    f"`prompt_embeds` must be text encoder states of shape (batch, text_length, {width}), "
                    f"got {tuple(prompt_embeds.shape)}."
                )
            if negative_prompt_embeds is not None:
                check_tensor(negative_prompt_embeds, "negative_prompt_embeds")
                if negative_prompt_embeds.shape != prompt_embeds.shape:
                    raise ValueError(
                        f"`negative_prompt_embeds` {tuple(negative_prompt_embeds.shape)} must have the shape of "
                        f"`prompt_embeds` {tuple(prompt_embeds.shape)}."
                    )
            num_prompts = prompt_embeds.shape[0]
        else:
            num_prompts = len(prompt_list(prompt, "prompt"))
        negative = None if negative_prompt is None else prompt_list(negative_prompt, "negative_prompt")
        if negative is not None and len(negative) not in (1, num_prompts):
            raise ValueError(
                f"`negative_prompt` has {len(negative)} prompts but `prompt` has {num_prompts}: give one, or one per prompt."
            )
        if (
            isinstance(num_images_per_prompt, bool)
            or not isinstance(num_images_per_prompt, int)
            or num_images_per_prompt < 1
        ):
            raise ValueError(f"`num_images_per_prompt` must be a positive integer, got {num_images_per_prompt!r}.")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"`output_type` must be one of {OUTPUT_TYPES}, got {output_type!r}.")
        unknown = [k for k in callback_on_step_end_tensor_inputs or [] if k not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(
                f"`callback_on_step_end_tensor_inputs` {unknown} are not available; choose from {self._callback_tensor_inputs}."
            )
        check_number(guidance_scale, "guidance_scale")
        if guidance_scale < 1:
            logger.warning(
                f"guidance_scale={guidance_scale} < 1 disables classifier-free guidance (the same as 1): only the "
                "conditional prediction is used."
            )
        check_number(eta, "eta", minimum=0, maximum=1)
        check_prediction_type(self.unet.config, self.scheduler.config)
        return num_prompts

    def check_batch(self, num_images: int, what: str) -> None:
        """Refuse, before allocating, a batch that cannot fit in the execution device's memory."""
        text_length = self.text_encoder.config.context_length if self.text_encoder is not None else 128
        check_batch_fits(
            self.unet, num_images, self.do_classifier_free_guidance, text_length, self._execution_device, what
        )

    # ----------------------------------------------------------------------------------------------------------
    # Text

    def _encode_texts(self, prompts: list[str], device, name: str) -> torch.Tensor:
        if self.text_encoder is None or self.tokenizer is None:
            raise ValueError(
                f"`{name}` needs the text encoder and tokenizer, but this pipeline was built without them: pass "
                "`prompt_embeds` (and `negative_prompt_embeds` for classifier-free guidance) instead."
            )
        config = self.text_encoder.config
        input_ids, mask = tokenize_prompts(self.tokenizer, prompts, config.context_length)
        # The text encoder does not check ids (that would sync the device); the CPU ids are checked here.
        if input_ids.max() >= config.vocab_size:
            raise ValueError(
                f"The tokenizer produced token id {int(input_ids.max())} but the text encoder has only "
                f"{config.vocab_size} token embeddings: the tokenizer and text encoder do not belong together."
            )
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
            prompt_embeds = self._encode_texts(prompt_list(prompt, "prompt"), device, "prompt")
        num_prompts = prompt_embeds.shape[0]
        if do_classifier_free_guidance and negative_prompt_embeds is None:
            negative = [""] if negative_prompt is None else prompt_list(negative_prompt, "negative_prompt")
            negative = negative * num_prompts if len(negative) == 1 else negative
            negative_prompt_embeds = self._encode_texts(negative, device, "negative_prompt")
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

    def read_images_at_model_size(self, image, crop_hint: str = "it") -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """`image` read and resized to the model's square size (see `GlideImageProcessor.read_images`), with a
        warning when a non-square image gets stretched; returns the pixels and each image's original size."""
        size = self.unet.config.sample_size
        pixels, image_sizes = self.image_processor.read_images(image, "image", size=size)
        stretched = sorted({(h, w) for h, w in image_sizes if h != w})
        if stretched:
            logger.warning(
                f"`image` of size {stretched} (height x width) is not square: it is stretched to {size}x{size}. Crop "
                f"{crop_hint} to a square first to keep its proportions."
            )
        return pixels, image_sizes

    def check_repaint_masks(self, repaint: torch.Tensor, sizes: list[tuple[int, int]]) -> None:
        """Every mask must leave something to repaint at the model's size (the API and the CLI share this rule)."""
        size = self.unet.config.sample_size
        empty = (repaint.flatten(1).amax(dim=1) == 0).nonzero().flatten().tolist()
        if empty:
            height, width = sizes[empty[0]]
            raise ValueError(
                f"`mask_image` {empty[0]} has nothing to repaint at the model's {size}x{size}: it is all black "
                f"(keep), or its white region vanished when it was resized from {height}x{width}. White / 1 marks the "
                "pixels to repaint (uint8 masks are read in 0..255, so 1 is nearly black)."
            )

    def postprocess(self, sample: torch.Tensor, output_type: str):
        """`"latent"`: the raw sample in [-1, 1] (GLIDE works in pixels); otherwise diffusers' post-processing."""
        if output_type == "latent":
            return sample
        return self.image_processor.postprocess(sample.float(), output_type=output_type)

    def prepare_latents(self, shape, generator, latents: torch.Tensor | None, device, noise_scale: float = 1.0):
        """x_T: `latents` as given (moved to the device), else `noise_scale` * N(0, 1) from `generator`."""
        check_generator(generator, shape[0])
        if latents is not None:
            check_tensor(latents, "latents")
            if tuple(latents.shape) != tuple(shape):
                raise ValueError(f"`latents` must have shape {tuple(shape)}, got {tuple(latents.shape)}.")
            return latents.to(device=device, dtype=torch.float32)
        return randn_tensor(shape, generator=generator, device=device, dtype=torch.float32) * noise_scale

    # ----------------------------------------------------------------------------------------------------------
    # Sampling

    def set_sampling_timesteps(self, num_inference_steps, timesteps, respacing, device) -> torch.Tensor:
        """GlideScheduler takes a step count, original timesteps or a respacing string; others the usual args."""
        if isinstance(self.scheduler, GlideScheduler):
            # kept on the CPU: `step` reads each timestep's value to pick its table row, which would otherwise
            # wait for the device at every step (the UNet moves the timestep to its device without waiting)
            given = {"num_inference_steps": num_inference_steps, "timesteps": timesteps, "respacing": respacing}
            return self.scheduler.set_timesteps(**{k: v for k, v in given.items() if v is not None})
        if respacing is not None:
            raise ValueError(
                f"`respacing` needs a GlideScheduler; this pipeline has a {type(self.scheduler).__name__}."
            )
        if timesteps is not None:
            self.scheduler.set_timesteps(timesteps=timesteps, device=device)
        else:
            num_inference_steps = num_inference_steps or 50
            self.scheduler.set_timesteps(num_inference_steps, device=device)
            check_distinct_timesteps(self.scheduler, num_inference_steps)
        return self.scheduler.timesteps

    def _predict(self, latents: torch.Tensor, t, batch: _UNetBatch, guided: bool = True) -> torch.Tensor:
        """The UNet output, float32; under guidance only epsilon is guided, the variance comes from the conditional rows.

        `guided=False` (a step outside `guidance_interval`) runs the conditional rows only."""
        dtype = self.unet.dtype
        if not (self.do_classifier_free_guidance and guided):
            return self.unet(latents.to(dtype), t, batch.prompt_embeds, **batch.conditioning).sample.float()
        if batch.guided_text is None:
            raise ValueError(
                "Classifier-free guidance was switched on during sampling (a callback set the guidance scale above 1), "
                "but the call started without it, so there is no unconditional text: start with `guidance_scale` > 1."
            )
        model_input = torch.cat([latents, latents]).to(dtype)
        output = self.unet(model_input, t, batch.guided_text, **batch.guided_conditioning).sample.float()
        channels = latents.shape[1]
        cond, uncond = output.chunk(2)
        eps = uncond[:, :channels] + self._guidance_scale * (cond[:, :channels] - uncond[:, :channels])
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
        if self.scheduler.config.get("prediction_type", "epsilon") == "sample" and not isinstance(
            self.scheduler, DDPMScheduler
        ):
            # DPM-Solver and its kin drop the variance channels of epsilon models only; DDPM uses them for any model
            learned = False
        output_channels = 2 * channels if learned else channels
        accepted = set(inspect.signature(self.scheduler.step).parameters)
        # GLIDE's DDIM re-derives epsilon from the clipped x0; diffusers' DDIM does so when asked.
        options = (("eta", eta), ("generator", generator), ("use_clipped_model_output", True))
        extra = {k: v for k, v in options if k in accepted}

        def diffusers_step(model_output, t, latents, gradient=None):
            model_output = model_output[:, :output_channels]
            if gradient is not None:
                # Score conditioning: eps - sqrt(1 - alpha_bar_t) * grad, i.e. x0 + (1 - alpha_bar_t) /
                # sqrt(alpha_bar_t) * grad for a model predicting x0.
                alpha_bar = self.scheduler.alphas_cumprod[int(t)].to(model_output.device, torch.float32)
                if self.scheduler.config.get("prediction_type", "epsilon") == "sample":
                    shift = -(1 - alpha_bar) / alpha_bar.sqrt() * gradient
                else:
                    shift = (1 - alpha_bar).sqrt() * gradient
                shifted = model_output[:, :channels].float() - shift
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

    def _run_callback(self, callback, tensor_inputs, step, t, latents, batch: _UNetBatch) -> torch.Tensor:
        """Call `callback_on_step_end` and apply (and check) the tensors it returns; returns the latents."""
        available = {
            "latents": latents,
            "prompt_embeds": batch.prompt_embeds,
            "negative_prompt_embeds": batch.negative_prompt_embeds,
        }
        outputs = callback(self, step, t, {name: available[name] for name in tensor_inputs or []})
        if outputs is None:
            return latents
        if not isinstance(outputs, dict):
            raise TypeError(
                f"`callback_on_step_end` must return a dict of tensors (or None), got {type(outputs).__name__}."
            )
        unknown = [name for name in outputs if name not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(
                f"`callback_on_step_end` returned {unknown}, which the pipeline cannot take; it takes "
                f"{self._callback_tensor_inputs}."
            )
        expected_shapes = {
            "latents": latents.shape,
            "prompt_embeds": batch.prompt_embeds.shape,
            "negative_prompt_embeds": batch.prompt_embeds.shape,
        }
        for name, value in outputs.items():
            if value is None and available[name] is None:  # handed back as it was given
                continue
            check_tensor(value, f"callback_on_step_end's {name!r}")
            if value.shape != expected_shapes[name]:
                raise ValueError(
                    f"`callback_on_step_end` returned {name!r} of shape {tuple(value.shape)}, expected "
                    f"{tuple(expected_shapes[name])}."
                )
        prompt_embeds = outputs.get("prompt_embeds", batch.prompt_embeds)
        negative_prompt_embeds = outputs.get("negative_prompt_embeds", batch.negative_prompt_embeds)
        if prompt_embeds is not batch.prompt_embeds or negative_prompt_embeds is not batch.negative_prompt_embeds:
            batch.set_text(prompt_embeds, negative_prompt_embeds)  # lay the text out again only when it changed
        return outputs.get("latents", latents)

    def denoise(
        self,
        latents: torch.Tensor,
        timesteps: torch.Tensor,
        prompt_embeds: torch.Tensor,
        negative_prompt_embeds: torch.Tensor | None,
        conditioning: dict,
        generator,
        eta: float,
        known: tuple[torch.Tensor, torch.Tensor] | None = None,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        guidance_gradient_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The denoising loop shared by all GLIDE pipelines.

        The guidance scale is read at every step (`self._guidance_scale`, which callbacks may change). A step whose
        UNet output or result holds NaN / infinity stops the call with an error naming it (on an accelerator the
        check runs after the loop, so the loop never waits on the device). `guidance_gradient_fn(latents, t)`, when
        given, returns the scaled gradient of log p(y | x_t) at each step.
        """
        self._num_timesteps = len(timesteps)
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        scheduler_step = self._make_scheduler_step(latents.shape[1], generator, eta, known)
        paste_after_step = known is not None and not isinstance(self.scheduler, GlideScheduler)
        batch = _UNetBatch(prompt_embeds, negative_prompt_embeds, conditioning)
        guided = guided_steps(timesteps, self._guidance_interval)
        if self.do_classifier_free_guidance and not any(guided):
            logger.warning(
                f"guidance_interval={self._guidance_interval} holds none of the {len(timesteps)} sampling timesteps "
                f"({timesteps[0].item()} to {timesteps[-1].item()}): no step is guided."
            )
        non_finite = _NonFiniteSteps(timesteps, self.scheduler)
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    continue
                model_output = self._predict(latents, t, batch, guided[i])
                gradient = guidance_gradient_fn(latents, t) if guidance_gradient_fn is not None else None
                latents = scheduler_step(model_output, t, latents, gradient)
                if paste_after_step:
                    next_t = timesteps[i + 1] if i + 1 < len(timesteps) else None
                    latents = self._paste_known_noised(latents, known, next_t, generator)
                non_finite.record(i, model_output, latents)
                if callback_on_step_end is not None:
                    latents = self._run_callback(
                        callback_on_step_end, callback_on_step_end_tensor_inputs, i, t, latents, batch
                    )
                progress_bar.update()
        non_finite.check()
        return latents
