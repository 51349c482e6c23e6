"""Read OpenAI checkpoints, and rename and reshape a GLIDE UNet state dict into GlideUNet2DModel + GlideTextEncoder
state dicts.

`load_openai_checkpoint` reads any of OpenAI's `.pt` files (the GLIDE models and both noised-CLIP towers).

OpenAI keeps the text transformer inside the UNet; we split it out. Attention projections are stored by
OpenAI as per-head interleaved `[head][q, k, v][head_dim]` rows (1x1 Conv1d weights for the UNet); ours
are `nn.Linear` weights in the usual `[q, k, v][head][head_dim]` order, so they are permuted here.

Every source key must be consumed and every target parameter filled with the right shape, otherwise
`CheckpointMismatchError` lists the offending keys.
"""

import os
from pathlib import Path

import torch

# Sub-module renames inside blocks: OpenAI name -> ours.
_RESNET_RENAMES = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "skip_connection": "conv_shortcut",
}
_TEXT_LAYER_RENAMES = {
    "ln_1": "norm1",
    "attn.c_proj": "attn.to_out",
    "ln_2": "norm2",
    "mlp.c_fc": "mlp.0",
    "mlp.c_proj": "mlp.2",
}
_TOP_LEVEL_RENAMES = {
    "time_embed.0": "time_embedding.linear_1",
    "time_embed.2": "time_embedding.linear_2",
    "transformer_proj": "pooled_text_proj",
    "input_blocks.0.0": "conv_in",
    "out.0": "norm_out",
    "out.2": "conv_out",
}
_TEXT_TOP_LEVEL_RENAMES = {
    "token_embedding.weight": "token_embedding.weight",
    "positional_embedding": "position_embedding",
    "padding_embedding": "padding_embedding",
    "final_ln.weight": "final_layer_norm.weight",
    "final_ln.bias": "final_layer_norm.bias",
}


class CheckpointMismatchError(ValueError):
    """The checkpoint does not fit the architecture described by the options."""


def format_keys(keys, limit: int = 20) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_openai_checkpoint(checkpoint_path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read an OpenAI `.pt` state dict safely (`weights_only=True`), with clear errors."""
    path = Path(checkpoint_path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint file not found: {path}")
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated / non-torch / unsafe files
        raise ValueError(
            f"Could not read {path} as a PyTorch state dict with torch.load(weights_only=True): {error}"
        ) from error
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f"{path} does not hold a state dict (a mapping of parameter names to tensors).")
    non_finite = [
        key for key, tensor in state_dict.items() if tensor.is_floating_point() and not tensor.isfinite().all()
    ]
    if non_finite:
        raise ValueError(
            f"{path} holds NaN or infinite values in {len(non_finite)} tensor(s), so it cannot be a trained model: "
            f"{format_keys(non_finite, limit=5)}"
        )
    return state_dict


class _KeyMover:
    """Moves tensors from a source state dict to a target one, remembering what was consumed."""

    def __init__(self, source: dict[str, torch.Tensor]):
        self.remaining = dict(source)
        self.target: dict[str, torch.Tensor] = {}

    def move(self, src: str, dst: str, transform=None) -> None:
        if src not in self.remaining:
            return  # reported later as a missing target key
        tensor = self.remaining.pop(src)
        self.target[dst] = transform(tensor) if transform else tensor

    def move_prefix(self, src: str, dst: str, transform=None) -> None:
        """Move every `src.<rest>` key to `dst.<rest>`."""
        for key in [k for k in self.remaining if k.startswith(src + ".")]:
            self.move(key, dst + key[len(src) :], transform)


def _parts_first(tensor: torch.Tensor, num_heads: int, parts: int) -> torch.Tensor:
    """Rows `[head][part][head_dim]` -> `[part][head][head_dim]` (part = q/k/v or k/v)."""
    rows = tensor.shape[0]
    if rows % (num_heads * parts):
        raise CheckpointMismatchError(f"Cannot split {rows} attention rows into {parts} parts x {num_heads} heads.")
    head_dim = rows // (num_heads * parts)
    reshaped = tensor.reshape(num_heads, parts, head_dim, *tensor.shape[1:]).transpose(0, 1)
    return reshaped.reshape(rows, *tensor.shape[1:])


def _squeeze_conv1d(tensor: torch.Tensor) -> torch.Tensor:
    # 1x1 Conv1d weights [out, in, 1] -> Linear [out, in]; biases are unchanged.
    return tensor[..., 0] if tensor.ndim == 3 else tensor


def _move_resnet(mover: _KeyMover, src: str, dst: str) -> None:
    for old, new in _RESNET_RENAMES.items():
        mover.move_prefix(f"{src}.{old}", f"{dst}.{new}")


def _move_attention(mover: _KeyMover, src: str, dst: str, heads_for_channels) -> None:
    channels_key = f"{src}.norm.weight"
    if channels_key not in mover.remaining:
        return
    num_heads = heads_for_channels(mover.remaining[channels_key].shape[0])
    mover.move_prefix(f"{src}.norm", f"{dst}.norm")
    mover.move_prefix(f"{src}.qkv", f"{dst}.to_qkv", lambda t: _parts_first(_squeeze_conv1d(t), num_heads, 3))
    mover.move_prefix(
        f"{src}.encoder_kv", f"{dst}.encoder_to_kv", lambda t: _parts_first(_squeeze_conv1d(t), num_heads, 2)
    )
    mover.move_prefix(f"{src}.proj_out", f"{dst}.to_out", _squeeze_conv1d)


def _move_resample(mover: _KeyMover, src: str, dst: str, resblock_updown: bool, conv_name: str) -> None:
    if resblock_updown:
        _move_resnet(mover, src, dst)
    else:
        mover.move_prefix(f"{src}.{conv_name}", f"{dst}.conv")


def split_openai_state_dict(
    state_dict: dict[str, torch.Tensor], unet_config: dict, text_encoder_config: dict
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Map an OpenAI UNet state dict onto our key names.

    Returns `(unet_state_dict, text_encoder_state_dict, unconsumed)`: `unconsumed` holds the source keys
    that matched nothing (the caller reports them).
    """
    mover = _KeyMover(state_dict)
    for old, new in _TOP_LEVEL_RENAMES.items():
        mover.move_prefix(old, new)

    head_dim = unet_config["attention_head_dim"]

    def heads_for_channels(channels: int) -> int:
        return channels // head_dim if head_dim else unet_config["num_attention_heads"]

    num_levels = len(unet_config["block_out_channels"])
    layers = unet_config["layers_per_block"]
    updown = unet_config["resblock_updown"]

    index = 1  # input_blocks.0 is conv_in
    for level in range(num_levels):
        for layer in range(layers):
            _move_resnet(mover, f"input_blocks.{index}.0", f"down_blocks.{level}.resnets.{layer}")
            _move_attention(
                mover, f"input_blocks.{index}.1", f"down_blocks.{level}.attentions.{layer}", heads_for_channels
            )
            index += 1
        if level != num_levels - 1:
            _move_resample(mover, f"input_blocks.{index}.0", f"down_blocks.{level}.downsampler", updown, "op")
            index += 1

    _move_resnet(mover, "middle_block.0", "mid_block.resnets.0")
    _move_attention(mover, "middle_block.1", "mid_block.attention", heads_for_channels)
    _move_resnet(mover, "middle_block.2", "mid_block.resnets.1")

    index = 0
    for up_index, level in enumerate(reversed(range(num_levels))):
        has_attention = unet_config["attention_levels"][level]
        for layer in range(layers + 1):
            src = f"output_blocks.{index}"
            _move_resnet(mover, f"{src}.0", f"up_blocks.{up_index}.resnets.{layer}")
            if has_attention:
                _move_attention(mover, f"{src}.1", f"up_blocks.{up_index}.attentions.{layer}", heads_for_channels)
            if level > 0 and layer == layers:
                resample_src = f"{src}.{2 if has_attention else 1}"
                _move_resample(mover, resample_src, f"up_blocks.{up_index}.upsampler", updown, "conv")
            index += 1
    unet_state_dict = mover.target

    # The text transformer lives inside OpenAI's UNet; it becomes its own model.
    mover.target = {}
    for old, new in _TEXT_TOP_LEVEL_RENAMES.items():
        mover.move(old, new)
    text_heads = text_encoder_config["num_attention_heads"]
    for layer in range(text_encoder_config["num_hidden_layers"]):
        src, dst = f"transformer.resblocks.{layer}", f"layers.{layer}"
        mover.move_prefix(f"{src}.attn.c_qkv", f"{dst}.attn.to_qkv", lambda t: _parts_first(t, text_heads, 3))
        for old, new in _TEXT_LAYER_RENAMES.items():
            mover.move_prefix(f"{src}.{old}", f"{dst}.{new}")
    return unet_state_dict, mover.target, mover.remaining


def check_against_model(converted: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], name: str) -> None:
    """Raise `CheckpointMismatchError` unless `converted` has exactly the keys and shapes of `expected`."""
    missing = set(expected) - set(converted)
    unexpected = set(converted) - set(expected)
    wrong_shape = [
        f"{key} (checkpoint {tuple(converted[key].shape)}, model {tuple(expected[key].shape)})"
        for key in sorted(set(expected) & set(converted))
        if converted[key].shape != expected[key].shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} {name} parameter(s) not found in the checkpoint: {format_keys(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected converted key(s): {format_keys(unexpected)}")
    if wrong_shape:
        problems.append(f"{len(wrong_shape)} shape mismatch(es): {'; '.join(wrong_shape[:20])}")
    if problems:
        raise CheckpointMismatchError(
            f"The checkpoint does not match the {name} configuration (check --model_type and --options_json):\n- "
            + "\n- ".join(problems)
        )
