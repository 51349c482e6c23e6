"""The GLIDE training loop: accelerate for devices, mixed precision, gradient accumulation and checkpoints."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, broadcast_object_list, set_seed
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from diffusers.utils import logging, make_image_grid
from huggingface_hub import ModelCard
from tqdm.auto import tqdm

from .. import pipelines
from ..model_cards import pipeline_model_card
from ..models import GlideUNet2DModel
from ..output_folders import OutputFolder, recover, recover_all, save_image_atomically
from ..pipelines.checks import check_prediction_type
from ..pipelines.pipeline_glide_base import GlideBasePipeline
from ..schedulers import GlideScheduler
from ..shapes import HELD_OUT_COMBINATIONS, ShapesDataset, caption_vocabulary
from ..tokenization import build_glide_tokenizer, build_word_level_tokenizer, tokenize_prompts
from ..variants import get_variant
from .checkpoint_files import (
    STATE_FILE,
    check_checkpoint_folder,
    check_random_states_restored,
    load_ema,
    read_global_step,
    save_ema,
    write_global_step,
)
from .data import HFImageCaptionDataset, ImageCaptionFolder, collate_image_captions, load_hf_dataset
from .finite_checks import check_finite_loss, check_finite_weights
from .losses import GlideDiffusionLoss
from .masks import random_inpaint_masks, random_rectangle_masks
from .presets import PRESETS, adapt_unet_to_variant, build_models_from_preset

logger = logging.get_logger(__name__)

CHECKPOINTS_DIR = "checkpoints"
SAMPLES_DIR = "samples"
PIPELINE_DIR = "pipeline"
_CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")


# --------------------------------------------------------------------------------------------------------------
# Noise


def pyramid_noise(noise: torch.Tensor, discount: float) -> torch.Tensor:
    """`noise` plus noise drawn at 1/2, 1/4, ... of its size (down to one pixel) and upsampled, the `i`-th halving
    weighted by `discount ** i`, rescaled to unit standard deviation per image ("multi-resolution noise").

    Blobs of noise the size of a shape or of the whole image make the colours and the place of things uncertain in
    x_t for longer, so the model learns to take them from the text instead (image to image can then recolour)."""
    batch, channels, height, width = noise.shape
    total, level, size = noise, 0, (height, width)
    while size != (1, 1):
        level += 1
        size = (max(1, height >> level), max(1, width >> level))
        coarse = torch.randn(batch, channels, *size, device=noise.device, dtype=noise.dtype)
        total = total + discount**level * F.interpolate(coarse, size=(height, width), mode="bilinear")
    return total / total.flatten(1).std(dim=1).view(batch, 1, 1, 1)


# --------------------------------------------------------------------------------------------------------------
# Data and models


def build_dataset(args: argparse.Namespace, resolution: int) -> torch.utils.data.Dataset:
    center_crop = not args.no_center_crop
    if args.train_data_dir:
        return ImageCaptionFolder(args.train_data_dir, resolution, center_crop=center_crop)
    if args.dataset_name:
        dataset = load_hf_dataset(args.dataset_name, args.dataset_split, args.dataset_config_name)
        return HFImageCaptionDataset(dataset, resolution, args.image_column, args.caption_column, center_crop)
    return ShapesDataset(
        args.num_shape_images,
        resolution=resolution,
        split="train",
        seed=args.seed,
        name_position_prob=args.shapes_position_prob,
    )


def dataset_words(dataset) -> list[str]:
    """The words of every caption, for a word-level tokenizer trained from scratch."""
    if isinstance(dataset, ShapesDataset):
        return caption_vocabulary()
    if isinstance(dataset, ImageCaptionFolder):
        captions = [caption for _, caption in dataset.items]
    else:
        captions = [c[0] if isinstance(c, list) else c for c in dataset.dataset[dataset.caption_column]]
    tokenizer = build_word_level_tokenizer([], context_length=1)
    words = []
    for caption in captions:
        normalized = tokenizer.backend_tokenizer.normalizer.normalize_str(caption)
        words.extend(normalized.split())
    return list(dict.fromkeys(words))


def _preset_sample_size(args) -> int:
    return (args.unet_config or {}).get("sample_size") or PRESETS[args.preset]["unet"].get("sample_size", 64)


def load_or_build_components(args: argparse.Namespace):
    """(tokenizer, text_encoder, unet, scheduler, dataset) for a fine-tune or a from-scratch run."""
    if args.pretrained_model:
        if args.unet_config or args.text_encoder_config:
            raise ValueError("--unet_config / --text_encoder_config only apply when training from scratch.")
        # the base class loads every variant; the UNet is then adapted to --model_type
        pipeline = GlideBasePipeline.from_pretrained(args.pretrained_model)
        unet = adapt_unet_to_variant(pipeline.unet, args.model_type)
        tokenizer, text_encoder, scheduler = pipeline.tokenizer, pipeline.text_encoder, pipeline.scheduler
        resolution = args.resolution or unet.config.sample_size
        if resolution != unet.config.sample_size:
            unet.register_to_config(sample_size=resolution)
        return tokenizer, text_encoder, unet, scheduler, build_dataset(args, resolution)

    resolution = args.resolution or _preset_sample_size(args)
    dataset = build_dataset(args, resolution)
    context_length = {**PRESETS[args.preset].get("text_encoder", {}), **(args.text_encoder_config or {})}.get(
        "context_length", 128
    )
    if args.tokenizer:
        tokenizer = build_glide_tokenizer(args.tokenizer)
    else:
        tokenizer = build_word_level_tokenizer(dataset_words(dataset), context_length)
    unet, text_encoder, scheduler = build_models_from_preset(
        args.preset,
        vocab_size=len(tokenizer),
        model_type=args.model_type,
        unet_overrides={**(args.unet_config or {}), "sample_size": resolution},
        text_encoder_overrides=args.text_encoder_config,
    )
    return tokenizer, text_encoder, unet, scheduler, dataset


def conditioning_inputs(
    unet: GlideUNet2DModel, images: torch.Tensor, low_res_size: int, mask_type: str, generator=None
):
    """The extra UNet inputs of a training batch: the downsampled image and/or a random inpainting mask."""
    inputs = {}
    if unet.config.inpainting:
        height, width = images.shape[-2:]
        keep = random_inpaint_masks(images.shape[0], height, width, mask_type, generator).to(images.device)
        inputs.update(inpaint_image=images, inpaint_mask=keep)
    if unet.config.super_resolution:
        low_res = F.interpolate(images, size=(low_res_size, low_res_size), mode="bicubic", antialias=True)
        inputs["low_res"] = low_res.clamp(-1, 1)
    return inputs


def check_crop_size(crop_size: int | None, resolution: int, low_res_size: int, unet: GlideUNet2DModel) -> int | None:
    """`--crop_size`, checked against the image size, the upsampling factor and the UNet's downsampling."""
    if crop_size is None:
        return None
    multiple = 2 ** (len(unet.config.block_out_channels) - 1)
    if unet.config.super_resolution:
        if resolution % low_res_size:
            raise ValueError(f"--crop_size needs a whole upsampling factor: {resolution} / {low_res_size}.")
        multiple = math.lcm(multiple, resolution // low_res_size)
    if crop_size > resolution or crop_size % multiple:
        raise ValueError(
            f"--crop_size must be at most the resolution ({resolution}) and a multiple of {multiple} (the UNet's "
            f"downsampling{' and the upsampling factor' if unet.config.super_resolution else ''}), got {crop_size}."
        )
    return crop_size


def random_crops(images: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """One random `size` x `size` crop of each image of `(batch, C, H, W)`."""
    batch, _, height, width = images.shape
    tops = torch.randint(0, height - size + 1, (batch,), generator=generator).tolist()
    lefts = torch.randint(0, width - size + 1, (batch,), generator=generator).tolist()
    windows = zip(images, tops, lefts, strict=True)
    return torch.stack([image[:, top : top + size, left : left + size] for image, top, left in windows])


# --------------------------------------------------------------------------------------------------------------
# Checkpoints


def is_checkpoint(path: Path) -> bool:
    """Whether `path` is a complete checkpoint of this trainer (its state file is written last)."""
    return (path / STATE_FILE).is_file()


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """The resumable states in `output_dir`, oldest first (staging folders of unfinished saves are not)."""
    folder = Path(output_dir) / CHECKPOINTS_DIR
    if not folder.is_dir():
        return []
    found = [
        (int(m.group(1)), p) for p in folder.iterdir() if (m := _CHECKPOINT_PATTERN.match(p.name)) and is_checkpoint(p)
    ]
    return [path for _, path in sorted(found)]


def _checkpoint_folder(path: Path) -> OutputFolder:
    return OutputFolder(
        path,
        overwrite=True,
        recognise=is_checkpoint,
        recognised_as=f"a checkpoint of this trainer (with {STATE_FILE})",
    )


def _resolve_resume_path(args) -> Path | None:
    if not args.resume_from_checkpoint:
        return None
    if args.resume_from_checkpoint == "latest":
        checkpoints = list_checkpoints(args.output_dir)
        if not checkpoints:
            logger.warning(f"No checkpoint in {args.output_dir!r} to resume from: starting a new training run.")
            return None
        return checkpoints[-1]
    path = Path(args.resume_from_checkpoint)
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(
            f"--resume_from_checkpoint {str(path)!r} is not a checkpoint folder written by this trainer (no {STATE_FILE})."
        )
    return path


# --------------------------------------------------------------------------------------------------------------
# The loop


class GlideTrainer:
    """
    Train one GLIDE UNet (and its text encoder unless frozen) on image-caption data.

    `GlideTrainer(args).train()` runs the whole job described by the arguments of
    [`~diffusers_glide.training.arguments.build_parser`] and returns the folder of the final pipeline (EMA
    weights), which `Glide*Pipeline.from_pretrained` loads.
    """

    def __init__(self, args: argparse.Namespace, command: str | None = None):
        self.args = args
        self.command = command
        self.output_dir = Path(args.output_dir)
        # checked now rather than after hours of training: replaced at the end, so it must be an earlier output
        inputs = (args.pretrained_model, args.train_data_dir, args.dataset_name, args.tokenizer)
        self.pipeline_folder = OutputFolder(self.output_dir / PIPELINE_DIR, overwrite=True, inputs=inputs)
        self.pipeline_folder.check()
        self.accelerator = Accelerator(
            gradient_accumulation_steps=args.gradient_accumulation_steps,
            mixed_precision=args.mixed_precision,
            log_with=args.report_to,
            project_config=ProjectConfiguration(
                project_dir=str(self.output_dir), logging_dir=str(self.output_dir / "logs")
            ),
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        )
        set_seed(args.seed)
        self.tokenizer, self.text_encoder, self.unet, self.scheduler, self.dataset = load_or_build_components(args)
        check_prediction_type(self.unet.config, self.scheduler.config)
        self.loss_fn = GlideDiffusionLoss.from_scheduler_config(
            self.scheduler.config, vb_weight=args.vb_weight, snr_floor=args.snr_floor
        )
        self.resolution = self.unet.config.sample_size
        self.low_res_size = args.low_res_size or self.resolution // 4
        self.crop_size = check_crop_size(args.crop_size, self.resolution, self.low_res_size, self.unet)
        self.train_text_encoder = not args.freeze_text_encoder
        self.global_step = 0

    # -- setup -----------------------------------------------------------------------------------------------

    def _trainable_parameters(self) -> list[torch.nn.Parameter]:
        params = list(self.unet.parameters())
        if self.train_text_encoder:
            params += list(self.text_encoder.parameters())
        return params

    def _named_trainable_parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        """`_trainable_parameters` with their names, prefixed by their model's folder name."""
        named = [(f"unet.{n}", p) for n, p in self.unwrapped_unet.named_parameters()]
        if self.train_text_encoder:
            text_encoder = self.accelerator.unwrap_model(self.text_encoder)
            named += [(f"text_encoder.{n}", p) for n, p in text_encoder.named_parameters()]
        return named

    def _check_finite_before_writing(self, what: str) -> None:
        """Refuse to write `what` from weights (raw or EMA) that hold NaN or infinite values."""
        trainable = self._named_trainable_parameters()
        ema = []
        if self.ema is not None:
            pairs = zip(trainable, self.ema.shadow_params, strict=True)
            ema = [(f"EMA {name}", shadow) for (name, _), shadow in pairs]
        check_finite_weights(trainable + ema, self.global_step, what)

    def _prepare(self):
        args, accelerator = self.args, self.accelerator
        self.text_encoder.requires_grad_(self.train_text_encoder)
        if args.gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()
            if self.train_text_encoder:
                self.text_encoder.enable_gradient_checkpointing()
        params = self._trainable_parameters()
        self.ema = None
        if args.ema_decay > 0:
            # saved by `save_checkpoint` as safetensors + JSON, not registered with accelerate: accelerate unpickles
            # its custom objects with weights_only=False
            self.ema = EMAModel(params, decay=args.ema_decay, use_ema_warmup=True)
        optimizer = torch.optim.AdamW(
            params,
            lr=args.learning_rate,
            betas=(args.adam_beta1, args.adam_beta2),
            weight_decay=args.adam_weight_decay,
            eps=args.adam_epsilon,
        )
        dataloader = torch.utils.data.DataLoader(
            self.dataset,
            batch_size=args.train_batch_size,
            shuffle=True,
            drop_last=len(self.dataset) >= args.train_batch_size,
            collate_fn=collate_image_captions,
            num_workers=args.dataloader_num_workers,
        )
        lr_scheduler = get_scheduler(
            args.lr_scheduler,
            optimizer=optimizer,
            num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
            num_training_steps=args.max_train_steps * accelerator.num_processes,
        )
        if self.train_text_encoder:
            self.unet, self.text_encoder, optimizer, dataloader, lr_scheduler = accelerator.prepare(
                self.unet, self.text_encoder, optimizer, dataloader, lr_scheduler
            )
        else:
            self.unet, optimizer, dataloader, lr_scheduler = accelerator.prepare(
                self.unet, optimizer, dataloader, lr_scheduler
            )
            self.text_encoder.to(accelerator.device)
        if self.ema is not None:
            self.ema.to(accelerator.device)
        self.optimizer, self.dataloader, self.lr_scheduler = optimizer, dataloader, lr_scheduler

    # -- one step --------------------------------------------------------------------------------------------

    def _drop_captions(self, captions: list[str]) -> list[str]:
        keep = torch.rand(len(captions)) >= self.args.caption_dropout
        return [caption if k else "" for caption, k in zip(captions, keep.tolist(), strict=True)]

    def compute_loss(self, batch: dict, timesteps: torch.Tensor | None = None, noise: torch.Tensor | None = None):
        """The hybrid loss of a batch (`timesteps` / `noise` fixed for evaluation, random otherwise)."""
        device = self.accelerator.device
        images = batch["pixel_values"].to(device)
        low_res_size = self.low_res_size
        if self.crop_size is not None:
            images = random_crops(images, self.crop_size)
            low_res_size = self.crop_size * self.low_res_size // self.resolution
        input_ids, mask = tokenize_prompts(self.tokenizer, batch["captions"], self.text_encoder_config.context_length)
        if timesteps is None:
            timesteps = self.loss_fn.sample_timesteps(
                images.shape[0],
                device,
                bias_portion=self.args.timestep_bias_portion,
                bias_multiplier=self.args.timestep_bias_multiplier,
            )
        if noise is None:
            noise = torch.randn_like(images)
            if self.args.noise_offset:
                # the mean colour of an image is otherwise fixed by the first, nearly pure-noise steps, where the
                # epsilon loss barely depends on it; offset noise keeps it uncertain (and learnable) for longer
                noise = noise + self.args.noise_offset * torch.randn(*images.shape[:2], 1, 1, device=device)
            if self.args.pyramid_noise_discount:
                noise = pyramid_noise(noise, self.args.pyramid_noise_discount)
        x_t = self.loss_fn.add_noise(images, noise, timesteps)
        with self.accelerator.autocast():
            with torch.set_grad_enabled(self.train_text_encoder and torch.is_grad_enabled()):
                text = self.text_encoder(input_ids.to(device), attention_mask=mask.to(device)).last_hidden_state
            extra = conditioning_inputs(self.unwrapped_unet, images, low_res_size, self.args.mask_type)
            model_output = self.unet(x_t, timesteps, text, **extra).sample
        return self.loss_fn(model_output, images, x_t, noise, timesteps)

    @property
    def text_encoder_config(self):
        return self.accelerator.unwrap_model(self.text_encoder).config

    @property
    def unwrapped_unet(self) -> GlideUNet2DModel:
        return self.accelerator.unwrap_model(self.unet)

    # -- checkpoints -----------------------------------------------------------------------------------------

    def save_checkpoint(self):
        """Save the state in a staging folder, then rename it to `checkpoint-<step>`: a run killed while saving
        leaves no half-written checkpoint for `--resume_from_checkpoint latest` to pick."""
        self._check_finite_before_writing("checkpoint")
        accelerator = self.accelerator
        folder = _checkpoint_folder(self.output_dir / CHECKPOINTS_DIR / f"checkpoint-{self.global_step}")
        # every process writes its random states into the folder the main process made
        staging = Path(broadcast_object_list([str(folder.begin()) if accelerator.is_main_process else None])[0])
        try:
            accelerator.save_state(str(staging))
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                if self.ema is not None:
                    save_ema(self.ema, [name for name, _ in self._named_trainable_parameters()], staging)
                write_global_step(staging, self.global_step)  # last: it marks the checkpoint complete
                folder.commit(staging)
        finally:
            if accelerator.is_main_process:
                shutil.rmtree(staging, ignore_errors=True)  # only there after a failure
        if accelerator.is_main_process:
            limit = self.args.checkpoints_total_limit
            if limit and limit > 0:
                for old in list_checkpoints(self.output_dir)[:-limit]:
                    shutil.rmtree(old, ignore_errors=True)
        accelerator.wait_for_everyone()

    def load_checkpoint(self, path: Path):
        """Resume from `path` after checking its files (see `checkpoint_files`): no file of it is unpickled beyond
        what `torch.load(weights_only=True)` allows."""
        accelerator = self.accelerator
        check_checkpoint_folder(
            path,
            num_models=2 if self.train_text_encoder else 1,
            process_index=accelerator.process_index,
            scaler=accelerator.scaler is not None,
            ema=self.ema is not None,
        )
        global_step = read_global_step(path)
        accelerator.load_state(str(path))
        check_random_states_restored(path, accelerator.process_index)
        if self.ema is not None:
            load_ema(self.ema, self._named_trainable_parameters(), path)
        self.global_step = global_step
        logger.info(f"Resumed from {path} at step {self.global_step}.")

    # -- pipelines -------------------------------------------------------------------------------------------

    def build_pipeline(self, scheduler=None):
        """A pipeline over the (unwrapped) models being trained."""
        pipeline_class = getattr(pipelines, get_variant(self.args.model_type).pipeline_class)
        return pipeline_class(
            unet=self.accelerator.unwrap_model(self.unet),
            text_encoder=self.accelerator.unwrap_model(self.text_encoder),
            tokenizer=self.tokenizer,
            scheduler=scheduler or self.scheduler,
        )

    def _with_ema_weights(self, fn):
        params = self._trainable_parameters()
        if self.ema is not None:
            self.ema.store(params)
            self.ema.copy_to(params)
        try:
            return fn()
        finally:
            if self.ema is not None:
                self.ema.restore(params)

    def _sample_batch(self, count: int):
        items = [self.dataset[i] for i in range(min(count, len(self.dataset)))]
        return collate_image_captions(items)

    def sample_prompts(self) -> list[str]:
        if self.args.sample_prompts:
            return self.args.sample_prompts
        if isinstance(self.dataset, ShapesDataset):
            return [
                f"a {color} {shape} on a {background} background"
                for color, shape, background in HELD_OUT_COMBINATIONS[:4]
            ]
        return self._sample_batch(4)["captions"]

    def write_samples(self) -> Path:
        """Sample images with the EMA weights, as one grid PNG in `output_dir/samples`."""
        self._check_finite_before_writing("sample images")
        args = self.args
        scheduler = GlideScheduler.from_config(
            self.scheduler.config, timestep_respacing=args.sample_respacing, sampler=args.sample_sampler
        )
        prompts = self.sample_prompts()
        kwargs = {}
        variant = get_variant(args.model_type)
        if not variant.text_to_image:
            batch = self._sample_batch(len(prompts))
            images = (batch["pixel_values"][: len(prompts)] + 1) / 2
            if variant.super_resolution:
                low = F.interpolate(images, size=(self.low_res_size,) * 2, mode="bicubic", antialias=True).clamp(0, 1)
                kwargs["image"] = low
            if variant.inpainting:
                keep = random_rectangle_masks(
                    len(prompts), self.resolution, self.resolution, torch.Generator().manual_seed(0)
                )
                # the upsampler's `image` is its low-resolution input; the image to repaint is `inpaint_image`
                kwargs["inpaint_image" if variant.super_resolution else "image"] = images
                kwargs["mask_image"] = 1 - keep

        def run():
            pipeline = self.build_pipeline(scheduler)
            pipeline.set_progress_bar_config(disable=True)
            unet = self.unwrapped_unet
            text_encoder = self.accelerator.unwrap_model(self.text_encoder)
            unet.eval(), text_encoder.eval()
            try:
                generator = torch.Generator().manual_seed(args.seed)
                return pipeline(
                    prompt=prompts, generator=generator, guidance_scale=args.sample_guidance_scale, **kwargs
                ).images
            finally:
                unet.train(), text_encoder.train(self.train_text_encoder)

        images = self._with_ema_weights(run)
        path = self.output_dir / SAMPLES_DIR / f"step-{self.global_step:07d}.png"
        return save_image_atomically(make_image_grid(images, rows=1, cols=len(images)), path)

    def save_pipeline(self) -> Path:
        """Write the EMA pipeline and its model card to `output_dir/pipeline`, atomically."""
        self._check_finite_before_writing("pipeline")

        def fill(staging: Path) -> None:
            self._with_ema_weights(lambda: self.build_pipeline().save_pretrained(staging, safe_serialization=True))
            self.model_card().save(staging / "README.md")

        return self.pipeline_folder.write(fill)

    def model_card(self) -> ModelCard:
        args = self.args
        source = args.train_data_dir or args.dataset_name or "the procedural shapes dataset (diffusers_glide.shapes)"
        how = (
            f"fine-tuned from `{args.pretrained_model}`"
            if args.pretrained_model
            else f"trained from scratch (preset `{args.preset}`)"
        )
        description = (
            f"A GLIDE `{args.model_type}` model {how} with diffusers-glide on {source}, "
            f"{self.global_step} steps of batch {args.train_batch_size} x {args.gradient_accumulation_steps} "
            f"accumulation x {self.accelerator.num_processes} process(es). Weights are the EMA weights."
        )
        return pipeline_model_card(
            get_variant(args.model_type), f"GLIDE {args.model_type} model", description, reproduce_command=self.command
        )

    # -- main ------------------------------------------------------------------------------------------------

    def train(self) -> Path:
        args, accelerator = self.args, self.accelerator
        if accelerator.is_main_process:
            # what killed runs left behind: staging folders, or a folder moved aside and not yet back
            recover(self.pipeline_folder.path)
            recover_all(self.output_dir / CHECKPOINTS_DIR)
        accelerator.wait_for_everyone()
        self._prepare()
        resume_path = _resolve_resume_path(args)
        if resume_path is not None:
            self.load_checkpoint(resume_path)
        if accelerator.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "training_args.json").write_text(json.dumps(vars(args), indent=2, default=str))
            accelerator.init_trackers(
                "glide", config={k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))}
            )

        updates_per_epoch = max(1, math.ceil(len(self.dataloader) / args.gradient_accumulation_steps))
        first_epoch = self.global_step // updates_per_epoch
        batches_to_skip = (self.global_step % updates_per_epoch) * args.gradient_accumulation_steps
        progress = tqdm(
            total=args.max_train_steps,
            initial=self.global_step,
            desc="training",
            disable=args.no_progress_bar or not accelerator.is_local_main_process,
        )
        self.unet.train()
        self.text_encoder.train(self.train_text_encoder)
        epoch = first_epoch
        while self.global_step < args.max_train_steps:
            self.dataloader.set_epoch(epoch)
            batches = self.dataloader
            if epoch == first_epoch and batches_to_skip:
                batches = accelerator.skip_first_batches(self.dataloader, batches_to_skip)
            for batch in batches:
                with accelerator.accumulate(self.unet, self.text_encoder):
                    batch = {**batch, "captions": self._drop_captions(batch["captions"])}
                    losses = self.compute_loss(batch)
                    loss = losses.loss.mean()
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and args.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(self._trainable_parameters(), args.max_grad_norm)
                    self.optimizer.step()
                    self.lr_scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
                if not accelerator.sync_gradients:
                    continue
                loss_value = loss.detach().item()  # read for the logs anyway: checking it costs no synchronisation
                check_finite_loss(loss_value, self.global_step + 1)
                if self.ema is not None:
                    self.ema.step(self._trainable_parameters())
                self.global_step += 1
                logs = {
                    "loss": loss_value,
                    "mse": losses.mse.mean().item(),
                    "vb": losses.vb.mean().item(),
                    "lr": self.lr_scheduler.get_last_lr()[0],
                }
                progress.update(1)
                progress.set_postfix(loss=f"{logs['loss']:.4f}", mse=f"{logs['mse']:.4f}")
                accelerator.log(logs, step=self.global_step)
                if args.checkpointing_steps and self.global_step % args.checkpointing_steps == 0:
                    self.save_checkpoint()
                if args.sample_steps and self.global_step % args.sample_steps == 0 and accelerator.is_main_process:
                    self.write_samples()
                if self.global_step >= args.max_train_steps:
                    break
            epoch += 1
        progress.close()
        accelerator.wait_for_everyone()
        target = self.output_dir / PIPELINE_DIR
        if accelerator.is_main_process:
            target = self.save_pipeline()
        accelerator.end_training()
        return target


def run_releasing_accelerate_state(trainer) -> Path:
    """`trainer.train()`, after which (also after a failure, such as a NaN loss) a single-process job releases
    accelerate's per-process device / precision state, so that a later run in the same Python session (a notebook,
    the tests) can pick another mixed precision."""
    try:
        return trainer.train()
    finally:
        if trainer.accelerator.num_processes == 1:
            AcceleratorState._reset_state(reset_partial_state=True)


def train(args: argparse.Namespace, command: str | None = None) -> Path:
    """Run a training job; returns the folder of the saved pipeline."""
    return run_releasing_accelerate_state(GlideTrainer(args, command=command))
