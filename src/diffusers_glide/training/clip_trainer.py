"""Training GLIDE's noised CLIP, the classifier of CLIP guidance, from scratch (`diffusers-glide train-clip`).

OpenAI released the noised CLIP's weights but not how it was trained; the GLIDE paper only says it was trained on
noised images. This trainer does the following.

- **Noise:** every image of a batch gets its own timestep `t ~ Uniform{0, ..., T-1}` and becomes
  `x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps` under the diffusion process CLIP will guide
  (`--beta_schedule`, `--num_train_timesteps`: those of the base model's scheduler). The image tower sees `(x_t, t)`,
  exactly what the pipelines give it during sampling.
- **Loss:** CLIP's symmetric contrastive loss. Logits are `exp(s) * cos(image_i, text_j)` with a learned temperature
  `s` (initialised to `log(1 / 0.07)` and kept at most `log(100)`, as in CLIP). The target of image `i` is spread
  evenly over every caption in the batch equal to its own (and vice versa), so that two images with the same caption
  are not pushed apart: on a closed vocabulary such duplicates are frequent.
- **Result:** a folder with `clip_image_encoder/`, `clip_text_encoder/` and `clip_tokenizer/`, the layout of a
  converted noised CLIP, which `GlidePipeline.load_clip_guidance(folder)` loads. The learned temperature becomes the
  image encoder's `logit_scale`, the factor of the similarity that CLIP guidance differentiates.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from diffusers.optimization import get_scheduler
from diffusers.utils import logging
from tqdm.auto import tqdm

from ..clip_tokenization import build_clip_tokenizer, build_small_clip_tokenizer, tokenize_clip_prompts
from ..model_cards import build_model_card
from ..models import GlideCLIPImageEncoder, GlideCLIPTextEncoder
from ..output_folders import OutputFolder, is_clip_folder
from ..pipelines.clip_guidance import normalize_embeddings
from ..schedulers.forward_process import ForwardProcess
from ..schedulers.respacing import BETA_SCHEDULES
from ..shapes.dataset import render_scene
from ..shapes.scoring import evaluation_scenes
from .arguments import (
    OPTIMIZER_RANGES,
    add_data_source_arguments,
    check_numeric_ranges,
    json_dict,
    training_seed,
)
from .data import collate_image_captions
from .finite_checks import check_finite_loss, check_finite_weights

logger = logging.get_logger(__name__)

# A noised CLIP small enough to ship (~1M parameters) for the 32x32 shapes models.
CLIP_PRESETS: dict[str, dict] = {
    "shapes-clip-tiny": {
        "image_encoder": {
            "image_size": 32,
            "patch_size": 4,
            "hidden_size": 128,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "projection_dim": 64,
        },
        "text_encoder": {
            "context_length": 16,
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "projection_dim": 64,
        },
    },
}
INITIAL_LOGIT_SCALE = 1 / 0.07  # CLIP's initial temperature
MAX_LOGIT_SCALE = 100.0  # CLIP's cap, also the released noised CLIP's value


def contrastive_loss(
    image_embeds: torch.Tensor, text_embeds: torch.Tensor, log_logit_scale: torch.Tensor, captions: list[str]
) -> torch.Tensor:
    """
    CLIP's symmetric cross-entropy over a batch, where every pair with equal captions counts as a positive.

    Args:
        image_embeds, text_embeds (`torch.Tensor`): `(batch, dim)` embeddings (normalised here).
        log_logit_scale (`torch.Tensor`): The log of the temperature multiplying the cosine similarities.
        captions (`list[str]`): The batch's captions; equal captions share the target probability.
    """
    logits = log_logit_scale.exp() * normalize_embeddings(image_embeds) @ normalize_embeddings(text_embeds).T
    index = {caption: i for i, caption in enumerate(dict.fromkeys(captions))}
    ids = torch.tensor([index[caption] for caption in captions], device=logits.device)
    same = (ids[:, None] == ids[None, :]).float()
    targets = same / same.sum(dim=1, keepdim=True)  # symmetric, so it serves both directions
    image_loss = -(targets * logits.log_softmax(dim=1)).sum(dim=1).mean()
    text_loss = -(targets * logits.T.log_softmax(dim=1)).sum(dim=1).mean()
    return (image_loss + text_loss) / 2


@torch.no_grad()
def caption_accuracy(
    image_encoder: GlideCLIPImageEncoder,
    text_encoder: GlideCLIPTextEncoder,
    tokenizer,
    forward_process: ForwardProcess,
    timesteps=(0, 250, 500, 750),
    split: str = "held_out",
    seed: int = 0,
) -> dict[int, float]:
    """
    Zero-shot accuracy on the shapes evaluation scenes (`split`): for each image, noised to each of `timesteps`,
    whether its own caption is the most similar of the split's captions. Chance is 1 / (number of captions).
    """
    device = image_encoder.device
    scenes = evaluation_scenes(split)
    captions = [scene.caption for scene in scenes]
    size = image_encoder.config.image_size
    images = torch.stack([render_scene(scene, size) for scene in scenes]).to(device) * 2 - 1
    ids, mask = tokenize_clip_prompts(tokenizer, captions, text_encoder.config.context_length)
    text = normalize_embeddings(text_encoder(ids.to(device), mask.to(device)).text_embeds)
    generator = torch.Generator().manual_seed(seed)
    accuracy = {}
    for t in timesteps:
        noise = torch.randn(images.shape, generator=generator).to(device)
        x_t = forward_process.add_noise(images, noise, torch.full((len(images),), t, device=device))
        image = normalize_embeddings(image_encoder(x_t, t).image_embeds)
        predicted = (image @ text.T).argmax(dim=1)
        accuracy[int(t)] = (predicted == torch.arange(len(scenes), device=device)).float().mean().item()
    return accuracy


def build_clip_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Train GLIDE's noised CLIP (for CLIP guidance) contrastively on noised images."
    )
    return add_clip_training_arguments(parser)


def add_clip_training_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    model = parser.add_argument_group("model")
    model.add_argument("--output_dir", required=True, help="where the noised-CLIP folder is written")
    model.add_argument("--preset", default="shapes-clip-tiny", choices=sorted(CLIP_PRESETS))
    model.add_argument("--image_encoder_config", type=json_dict, help="JSON overriding the preset's image tower")
    model.add_argument("--text_encoder_config", type=json_dict, help="JSON overriding the preset's text tower")
    model.add_argument(
        "--clip_tokenizer",
        help="a folder with CLIP's bpe_simple_vocab_16e6.txt[.gz] or a saved CLIP tokenizer. Default: a small CLIP "
        "BPE whose merges spell out the words of the training captions",
    )
    model.add_argument("--beta_schedule", default="squaredcos_cap_v2", choices=BETA_SCHEDULES)
    model.add_argument("--num_train_timesteps", type=int, default=1000)

    add_data_source_arguments(parser)

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--train_batch_size", type=int, default=128)
    optim.add_argument("--max_train_steps", type=int, default=1000)
    optim.add_argument("--learning_rate", type=float, default=5e-4, help="in (0, 1]")
    optim.add_argument("--lr_scheduler", default="cosine", help="a diffusers.optimization schedule")
    optim.add_argument("--lr_warmup_steps", type=int, default=100)
    optim.add_argument("--adam_weight_decay", type=float, default=0.1)
    optim.add_argument("--max_grad_norm", type=float, default=1.0, help="gradient clipping norm; 0 disables it")
    optim.add_argument("--mixed_precision", choices=["no", "fp16", "bf16"], help="default: accelerate's config")
    optim.add_argument("--seed", type=training_seed, default=0)
    optim.add_argument("--no_progress_bar", action="store_true")
    return parser


def check_clip_training_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    for name in ("train_batch_size", "max_train_steps", "num_shape_images", "num_train_timesteps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be positive, got {getattr(args, name)}")
    if args.train_batch_size < 2:
        parser.error("--train_batch_size must be at least 2: a contrastive loss compares the images of a batch")
    if args.lr_warmup_steps < 0:
        parser.error(f"--lr_warmup_steps must be at least 0, got {args.lr_warmup_steps}")
    check_numeric_ranges(parser, args, OPTIMIZER_RANGES)
    return args


class NoisedCLIPTrainer:
    """Train a noised CLIP as described in the module docstring; `train()` returns the saved folder."""

    def __init__(self, args: argparse.Namespace, command: str | None = None):
        from .trainer import build_dataset, dataset_words  # the diffusion trainer's data sources

        self.args, self.command = args, command
        self.output = OutputFolder(
            Path(args.output_dir),
            overwrite=True,
            inputs=(args.train_data_dir, args.dataset_name, args.clip_tokenizer),
            recognise=is_clip_folder,
            recognised_as="a noised-CLIP folder",
        )
        self.output.check()
        self.accelerator = Accelerator(mixed_precision=args.mixed_precision)
        set_seed(args.seed)
        preset = CLIP_PRESETS[args.preset]
        image_config = {**preset["image_encoder"], **(args.image_encoder_config or {})}
        image_config["num_train_timesteps"] = args.num_train_timesteps
        text_config = {**preset["text_encoder"], **(args.text_encoder_config or {})}
        # the data arguments the diffusion trainer's `build_dataset` reads
        data_args = argparse.Namespace(**{**vars(args), "seed": args.seed})
        self.dataset = build_dataset(data_args, image_config["image_size"])
        if args.clip_tokenizer:
            self.tokenizer = build_clip_tokenizer(args.clip_tokenizer)
        else:
            self.tokenizer = build_small_clip_tokenizer(dataset_words(self.dataset), text_config["context_length"])
        text_config.setdefault("vocab_size", len(self.tokenizer))
        if text_config["vocab_size"] < len(self.tokenizer):
            raise ValueError(
                f"The text tower's vocab_size ({text_config['vocab_size']}) is smaller than the tokenizer's "
                f"({len(self.tokenizer)})."
            )
        self.image_encoder = GlideCLIPImageEncoder(**image_config)
        self.text_encoder = GlideCLIPTextEncoder(**text_config)
        self.log_logit_scale = torch.nn.Parameter(torch.tensor(math.log(INITIAL_LOGIT_SCALE)))
        self.forward_process = ForwardProcess.from_schedule(args.beta_schedule, args.num_train_timesteps)
        self.global_step = 0
        self.last_loss = float("nan")

    def compute_loss(self, batch: dict) -> torch.Tensor:
        device = self.accelerator.device
        images = batch["pixel_values"].to(device)
        timesteps = torch.randint(0, self.args.num_train_timesteps, (images.shape[0],), device=device)
        x_t = self.forward_process.add_noise(images, torch.randn_like(images), timesteps)
        ids, mask = tokenize_clip_prompts(self.tokenizer, batch["captions"], self.text_config.context_length)
        with self.accelerator.autocast():
            image_embeds = self.image_encoder(x_t, timesteps).image_embeds
            text_embeds = self.text_encoder(ids.to(device), mask.to(device)).text_embeds
        return contrastive_loss(image_embeds.float(), text_embeds.float(), self.log_logit_scale, batch["captions"])

    @property
    def text_config(self):
        return self.accelerator.unwrap_model(self.text_encoder).config

    def train(self) -> Path:
        args, accelerator = self.args, self.accelerator
        start = time.monotonic()
        params = [*self.image_encoder.parameters(), *self.text_encoder.parameters(), self.log_logit_scale]
        # no weight decay on the temperature, the embeddings' tables and LayerNorms, as in CLIP
        decayed = [p for p in params if p.ndim >= 2 and p is not self.image_encoder.timestep_embedding.weight]
        others = [p for p in params if all(p is not q for q in decayed)]
        optimizer = torch.optim.AdamW(
            [{"params": decayed, "weight_decay": args.adam_weight_decay}, {"params": others, "weight_decay": 0.0}],
            lr=args.learning_rate,
            betas=(0.9, 0.98),
            eps=1e-6,
        )
        dataloader = torch.utils.data.DataLoader(
            self.dataset,
            batch_size=args.train_batch_size,
            shuffle=True,
            drop_last=len(self.dataset) >= args.train_batch_size,
            collate_fn=collate_image_captions,
        )
        lr_scheduler = get_scheduler(
            args.lr_scheduler,
            optimizer=optimizer,
            num_warmup_steps=args.lr_warmup_steps,
            num_training_steps=args.max_train_steps,
        )
        self.image_encoder, self.text_encoder, optimizer, dataloader, lr_scheduler = accelerator.prepare(
            self.image_encoder, self.text_encoder, optimizer, dataloader, lr_scheduler
        )
        self.log_logit_scale.data = self.log_logit_scale.data.to(accelerator.device)
        progress = tqdm(total=args.max_train_steps, desc="training CLIP", disable=args.no_progress_bar)
        self.image_encoder.train(), self.text_encoder.train()
        while self.global_step < args.max_train_steps:
            for batch in dataloader:
                loss = self.compute_loss(batch)
                accelerator.backward(loss)
                if args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(params, args.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                with torch.no_grad():
                    self.log_logit_scale.clamp_(max=math.log(MAX_LOGIT_SCALE))
                self.global_step += 1
                self.last_loss = loss.item()
                check_finite_loss(self.last_loss, self.global_step)
                progress.update(1)
                progress.set_postfix(loss=f"{self.last_loss:.4f}", scale=f"{self.log_logit_scale.exp().item():.1f}")
                if self.global_step >= args.max_train_steps:
                    break
        progress.close()
        self.wall_seconds = time.monotonic() - start
        image_encoder = accelerator.unwrap_model(self.image_encoder).eval()
        text_encoder = accelerator.unwrap_model(self.text_encoder).eval()
        named = [
            *(("clip_image_encoder." + n, p) for n, p in image_encoder.named_parameters()),
            *(("clip_text_encoder." + n, p) for n, p in text_encoder.named_parameters()),
            ("logit_scale", self.log_logit_scale),
        ]
        check_finite_weights(named, self.global_step, "noised CLIP")
        image_encoder.register_to_config(logit_scale=self.log_logit_scale.exp().item())
        self.accuracy = caption_accuracy(image_encoder, text_encoder, self.tokenizer, self.forward_process)
        logger.info(f"held-out caption accuracy by timestep: {self.accuracy}")
        return self.save(image_encoder, text_encoder)

    def save(self, image_encoder: GlideCLIPImageEncoder, text_encoder: GlideCLIPTextEncoder) -> Path:
        def fill(staging: Path) -> None:
            image_encoder.save_pretrained(staging / "clip_image_encoder")
            text_encoder.save_pretrained(staging / "clip_text_encoder")
            self.tokenizer.save_pretrained(staging / "clip_tokenizer")
            self.model_card().save(staging / "README.md")

        return self.output.write(fill)

    def model_card(self):
        args = self.args
        source = args.train_data_dir or args.dataset_name or "the procedural shapes dataset (diffusers_glide.shapes)"
        accuracy = ", ".join(f"t={t}: {a:.2f}" for t, a in self.accuracy.items())
        chance = 1 / len(evaluation_scenes("held_out"))
        description = (
            f"A noised CLIP (GLIDE's CLIP-guidance classifier) trained from scratch with `diffusers-glide train-clip` "
            f"on {source}: {self.global_step} steps of batch {args.train_batch_size}, timesteps uniform over the "
            f"{args.beta_schedule} process of {args.num_train_timesteps} steps, in {self.wall_seconds / 60:.0f} "
            f"minutes; final loss {self.last_loss:.4f}, learned logit_scale {self.log_logit_scale.exp().item():.1f}.\n\n"
            f"Zero-shot caption accuracy on the held-out shapes scenes (chance {chance:.2f}): {accuracy}."
        )
        usage = """from diffusers_glide import GlidePipeline

pipe = GlidePipeline.from_pretrained("path/to/a/glide/base")
pipe.load_clip_guidance("path/to/this/folder")
image = pipe("", clip_prompt="a red circle on a blue background", guidance_scale=1.0, clip_guidance_scale=3.0).images[0]"""
        return build_model_card(
            "A noised CLIP for GLIDE's CLIP guidance",
            description,
            {
                "clip_image_encoder": "GlideCLIPImageEncoder",
                "clip_text_encoder": "GlideCLIPTextEncoder",
                "clip_tokenizer": "a transformers CLIPTokenizer",
            },
            usage,
            ["glide", "diffusers-glide", "clip", "clip-guidance"],
            reproduce_command=self.command,
        )


def train_clip(args: argparse.Namespace, command: str | None = None) -> Path:
    """Run a noised-CLIP training job; returns the saved folder."""
    from .trainer import run_releasing_accelerate_state  # imported when used, as its data sources are

    return run_releasing_accelerate_state(NoisedCLIPTrainer(args, command=command))


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_clip_parser("python -m diffusers_glide.training.clip_trainer")
    args = check_clip_training_arguments(parser, parser.parse_args(argv))
    path = train_clip(args, command=shlex.join(["python", "-m", "diffusers_glide.training.clip_trainer", *argv]))
    print(f"Saved the noised CLIP to {path}")


if __name__ == "__main__":
    main()
