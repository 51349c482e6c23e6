"""Convert OpenAI's noised CLIP (`clip_image_enc.pt` + `clip_text_enc.pt`) into diffusers-glide components:

```
<dump_path>/
  clip_image_encoder/   GlideCLIPImageEncoder (safetensors)
  clip_text_encoder/    GlideCLIPTextEncoder (safetensors)
  clip_tokenizer/       CLIP's BPE as a transformers CLIPTokenizer
  README.md             model card
```

The subfolders carry the names of `GlidePipeline`'s optional CLIP components, so
`GlidePipeline.load_clip_guidance(<dump_path>)` (or passing the three components to `from_pretrained`) adds CLIP
guidance to a base pipeline.

The options are the keys of the reference's CLIP `config.yaml` (`n_embd`, `n_head_text`, ...); the defaults are
the released model's.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import init_empty_weights
from huggingface_hub import ModelCard

from ..clip_tokenization import build_clip_tokenizer
from ..model_cards import CLIP_LIMITATIONS, GLIDE_PAPER, OPENAI_LICENSE_NOTE, build_model_card, openai_weights_note
from ..models import GlideCLIPImageEncoder, GlideCLIPTextEncoder
from ..schedulers.respacing import BETA_SCHEDULES
from ..vocabularies import vocabulary_dir
from .option_checks import POSITIVE_INT, POSITIVE_NUMBER, check_known, check_options, one_of, option_error
from .state_dict import CheckpointMismatchError, check_against_model, format_keys, load_openai_checkpoint

CLIP_MODEL_TYPE = "clip"

# The reference's CLIP config.yaml: the released noised CLIP.
CLIP_DEFAULTS = {
    "logit_scale": 100.0,
    "beta_schedule": "squaredcos_cap_v2",
    "n_timesteps": 1000,
    "image_size": 64,
    "patch_size": 4,
    "n_vocab": 65536,
    "max_text_len": 77,
    "n_embd": 512,
    "n_head_state_text": 64,
    "n_head_text": 8,
    "n_xf_blocks_text": 12,
    "n_head_state_image": 64,
    "n_head_image": 12,
    "n_xf_blocks_image": 12,
}
_WHAT = "noised-CLIP"
_RULES = {name: POSITIVE_INT for name in CLIP_DEFAULTS} | {
    "logit_scale": POSITIVE_NUMBER,
    "beta_schedule": one_of(BETA_SCHEDULES),
}

# Which file is which: the image tower has the timestep table, the text tower the token table.
_IMAGE_MARKER, _TEXT_MARKER = "blocks.input.w_t", "blocks.input.w_voc"

# OpenAI's CLIP modules name parameters `w` / `b` (Affine) and `g` / `b` (LayerNorm).
_PARAMETER_NAMES = {"w": "weight", "g": "weight", "b": "bias"}
_LAYER_MODULES = {
    "f_attn.ln": "norm1",
    "f_attn.f_q": "attn.to_q",
    "f_attn.f_k": "attn.to_k",
    "f_attn.f_v": "attn.to_v",
    "f_attn.f_c": "attn.to_out",
    "f_mlp.ln": "norm2",
    "f_mlp.f_1": "mlp.0",
    "f_mlp.f_2": "mlp.2",
}
_TEXT_NAMES = {
    "blocks.input.w_voc": "token_embedding.weight",
    "blocks.input.w_pos": "position_embedding",
    "blocks.output.ln": "final_layer_norm",
    "blocks.output.f": "text_projection",
}
_IMAGE_NAMES = {
    "blocks.input.w_t": "timestep_embedding.weight",
    "blocks.input.patch_proj": "patch_embedding.weight",
    "blocks.input.w_pos": "position_embedding",
    "blocks.input.ln": "pre_layer_norm",
    "blocks.output.ln": "final_layer_norm",
    "blocks.output.f": "image_projection",
}
_LAYER_KEY = re.compile(r"blocks\.block_(\d+)\.(f_attn\.\w+|f_mlp\.\w+)\.(\w+)")
_MODULE_KEY = re.compile(r"(blocks\.(?:input|output)\.\w+)\.(\w+)")


@dataclass
class ConvertedCLIP:
    """The noised CLIP components of a conversion, before they are written anywhere.

    `released` is set when the two checkpoints are OpenAI's released `clip_image_enc.pt` and `clip_text_enc.pt`;
    the model card then names them and their URLs. False (the default) keeps a neutral origin sentence.
    """

    image_encoder: GlideCLIPImageEncoder
    text_encoder: GlideCLIPTextEncoder
    tokenizer: object
    released: bool = False

    def save(self, folder: Path, dtype: torch.dtype, repo_id: str | None = None) -> None:
        """Write the component folders and the model card into an existing empty folder."""
        for name, model in (("clip_image_encoder", self.image_encoder), ("clip_text_encoder", self.text_encoder)):
            torch.nn.Module.to(model, dtype)  # see `ConvertedGlide.save`
            model.save_pretrained(folder / name)
        self.tokenizer.save_pretrained(folder / "clip_tokenizer")
        self.model_card(repo_id).save(folder / "README.md")

    def parameter_counts(self) -> dict[str, int]:
        return {
            "clip image encoder": sum(p.numel() for p in self.image_encoder.parameters()),
            "clip text encoder": sum(p.numel() for p in self.text_encoder.parameters()),
        }

    def model_card(self, repo_id: str | None = None, released: bool | None = None) -> ModelCard:
        """
        The card of the converted noised CLIP: the weights' origin, license (MIT), OpenAI's stated limitations and a
        usage example of CLIP guidance. `released` (default: the `released` field) says the checkpoints are OpenAI's
        released files, for the card to give their URLs; otherwise the origin sentence is neutral.
        """
        released = self.released if released is None else released
        origin = openai_weights_note("noised CLIP", CLIP_MODEL_TYPE, released=released)
        usage = f"""from diffusers_glide import GlidePipeline

pipe = GlidePipeline.from_pretrained("path/to/glide-base")
pipe.load_clip_guidance("{repo_id or "path/to/this/folder"}")
image = pipe("an oil painting of a corgi", guidance_scale=1.0, clip_guidance_scale=3.0).images[0]"""
        return build_model_card(
            "GLIDE's noised CLIP for diffusers",
            "GLIDE's noised CLIP, the classifier of its CLIP guidance, converted with diffusers-glide\n"
            "(`diffusers-glide convert --model_type clip`). Its image encoder sees noised images together with their\n"
            f"diffusion timestep.\n{origin}\nPaper: {GLIDE_PAPER}.\n\n{OPENAI_LICENSE_NOTE}",
            {
                "clip_image_encoder": "GlideCLIPImageEncoder",
                "clip_text_encoder": "GlideCLIPTextEncoder",
                "clip_tokenizer": "CLIP BPE, a transformers CLIPTokenizer",
            },
            usage,
            ["glide", "diffusers-glide", "clip", "clip-guidance"],
            install='pip install "diffusers-glide[clip]"',
            license="mit",
            limitations=CLIP_LIMITATIONS,
        )


def resolve_clip_options(overrides: dict | None = None) -> dict:
    """The released CLIP config updated with `overrides` (config.yaml keys); unknown keys and bad values are errors."""
    options = {**CLIP_DEFAULTS, **check_known(overrides, CLIP_DEFAULTS, _WHAT)}
    check_options(options, _RULES, _WHAT)
    if options["image_size"] % options["patch_size"]:
        raise option_error(
            _WHAT, "patch_size", options["patch_size"], f"a divisor of image_size ({options['image_size']})"
        )
    return options


def clip_configs_from_options(options: dict) -> tuple[dict, dict]:
    """`(image_encoder_config, text_encoder_config)` from resolved (checked) config.yaml options."""

    def transformer(tower: str) -> dict:  # the keys of one tower end in _image / _text
        heads = options[f"n_head_{tower}"]
        return {
            "hidden_size": heads * options[f"n_head_state_{tower}"],
            "num_hidden_layers": options[f"n_xf_blocks_{tower}"],
            "num_attention_heads": heads,
            "projection_dim": options["n_embd"],
        }

    image = {
        "image_size": options["image_size"],
        "patch_size": options["patch_size"],
        **transformer("image"),
        "num_train_timesteps": options["n_timesteps"],
        "logit_scale": float(options["logit_scale"]),
    }
    text = {"vocab_size": options["n_vocab"], "context_length": options["max_text_len"], **transformer("text")}
    return image, text


def identify_clip_state_dicts(state_dicts: list[dict[str, torch.Tensor]], names: list[str]):
    """`(image_state_dict, text_state_dict)` from the two checkpoints, given in either order."""
    if len(state_dicts) != 2:
        raise ValueError(
            f"The noised CLIP is two checkpoints, clip_image_enc.pt and clip_text_enc.pt; got {len(state_dicts)} "
            f"({', '.join(names)})."
        )
    image = [(sd, name) for sd, name in zip(state_dicts, names, strict=True) if _IMAGE_MARKER in sd]
    text = [(sd, name) for sd, name in zip(state_dicts, names, strict=True) if _TEXT_MARKER in sd]
    if len(image) != 1 or len(text) != 1:
        raise CheckpointMismatchError(
            f"Expected one noised-CLIP image encoder (with {_IMAGE_MARKER!r}) and one text encoder (with "
            f"{_TEXT_MARKER!r}); {', '.join(names)} hold {len(image)} image and {len(text)} text encoder(s)."
        )
    return image[0][0], text[0][0]


def _rename(state_dict: dict[str, torch.Tensor], top_level: dict[str, str]):
    """OpenAI CLIP keys -> ours; returns `(renamed, unconsumed keys)`."""
    renamed, unconsumed = {}, []
    for key, tensor in state_dict.items():
        if key in top_level:
            renamed[top_level[key]] = tensor
            continue
        layer = _LAYER_KEY.fullmatch(key)
        module = _MODULE_KEY.fullmatch(key)
        if layer and layer.group(2) in _LAYER_MODULES and layer.group(3) in _PARAMETER_NAMES:
            index, sub, param = layer.groups()
            renamed[f"transformer.layers.{index}.{_LAYER_MODULES[sub]}.{_PARAMETER_NAMES[param]}"] = tensor
        elif module and module.group(1) in top_level and module.group(2) in _PARAMETER_NAMES:
            renamed[f"{top_level[module.group(1)]}.{_PARAMETER_NAMES[module.group(2)]}"] = tensor
        else:
            unconsumed.append(key)
    return renamed, unconsumed


def convert_clip_state_dicts(
    image_state_dict: dict[str, torch.Tensor], text_state_dict: dict[str, torch.Tensor], options: dict | None = None
) -> tuple[GlideCLIPImageEncoder, GlideCLIPTextEncoder]:
    """Build our two CLIP towers from OpenAI's state dicts (meta tensors work and use no memory).

    Raises `CheckpointMismatchError` listing unknown keys, missing parameters and shape mismatches.
    """
    image_config, text_config = clip_configs_from_options(resolve_clip_options(options))
    models = []
    for name, state_dict, top_level, model_class, config in (
        ("clip image encoder", image_state_dict, _IMAGE_NAMES, GlideCLIPImageEncoder, image_config),
        ("clip text encoder", text_state_dict, _TEXT_NAMES, GlideCLIPTextEncoder, text_config),
    ):
        renamed, unconsumed = _rename(state_dict, top_level)
        if unconsumed:
            raise CheckpointMismatchError(
                f"{len(unconsumed)} key(s) of the {name} checkpoint are not part of OpenAI's noised CLIP: "
                f"{format_keys(unconsumed)}"
            )
        with init_empty_weights():
            model = model_class(**config)
        check_against_model(renamed, model.state_dict(), name)
        model.load_state_dict({k: v.float() for k, v in renamed.items()}, strict=True, assign=True)
        models.append(model.eval())
    return models[0], models[1]


def convert_clip_checkpoints(
    checkpoint_paths, vocab_dir=None, options: dict | None = None, released: bool = False
) -> ConvertedCLIP:
    """Load and convert `clip_image_enc.pt` and `clip_text_enc.pt` (either order) plus the CLIP BPE tokenizer.

    `vocab_dir` is the folder of CLIP's `bpe_simple_vocab_16e6.txt(.gz)` (or a saved tokenizer); by default the
    vocabularies shipped with the package (`diffusers_glide.vocabularies.vocabulary_dir()`). Set `released` only
    when the two files are OpenAI's released ones: the model card then names them and their download URLs.
    """
    paths = [str(path) for path in checkpoint_paths]
    image_sd, text_sd = identify_clip_state_dicts([load_openai_checkpoint(path) for path in paths], paths)
    image_encoder, text_encoder = convert_clip_state_dicts(image_sd, text_sd, options)
    if vocab_dir is None:
        vocab_dir = vocabulary_dir()
    tokenizer = build_clip_tokenizer(vocab_dir)
    if len(tokenizer) > text_encoder.config.vocab_size:
        raise ValueError(
            f"The CLIP tokenizer in {vocab_dir} has {len(tokenizer)} tokens but the text encoder's token table only "
            f"{text_encoder.config.vocab_size} rows."
        )
    return ConvertedCLIP(image_encoder, text_encoder, tokenizer, released=released)
