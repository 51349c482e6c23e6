"""The parameter count of each GLIDE model, computed from its config alone (nothing is built).

The models' constructors refuse a config whose count is above `config_limits.MAX_PARAMETERS` before they create a
single module, so every formula here follows its model's `__init__` layer by layer; the tests compare each one with
the parameters of models actually built, the full-size GLIDE models included (on the `meta` device).

Each function takes a config whose values the constructor has already checked (types and ranges): a mapping such as
`model.config` or the keyword arguments of the constructor.
"""

from collections.abc import Mapping


def _linear(in_features: int, out_features: int, bias: bool = True) -> int:
    return in_features * out_features + (out_features if bias else 0)


def _conv(in_channels: int, out_channels: int, kernel: int) -> int:
    return in_channels * out_channels * kernel * kernel + out_channels


def _norm(channels: int) -> int:  # GroupNorm / LayerNorm: a weight and a bias per channel
    return 2 * channels


def _transformer_layer(width: int, key_bias: bool) -> int:
    """`PreNormTransformerLayer`: two norms, q|k|v and output projections (the CLIP key has no bias), a 4x MLP."""
    attention = 4 * _linear(width, width) - (0 if key_bias else width)
    mlp = _linear(width, 4 * width) + _linear(4 * width, width)
    return 2 * _norm(width) + attention + mlp


def unet_parameter_count(config: Mapping) -> int:
    """Parameters of `GlideUNet2DModel(**config)`."""
    levels = list(config["block_out_channels"])
    base, context = levels[0], config["encoder_hid_dim"]
    time_embed = 4 * base
    scale_shift = config["resnet_time_scale_shift"] == "scale_shift"
    updown, layers = config["resblock_updown"], config["layers_per_block"]

    def resnet(in_channels: int, out_channels: int) -> int:
        count = _norm(in_channels) + _conv(in_channels, out_channels, 3) + _norm(out_channels)
        count += _linear(time_embed, 2 * out_channels if scale_shift else out_channels)
        count += _conv(out_channels, out_channels, 3)
        return count + (_conv(in_channels, out_channels, 1) if in_channels != out_channels else 0)

    def attention(channels: int) -> int:
        count = _norm(channels) + _linear(channels, 3 * channels) + _linear(channels, channels)
        return count + (_linear(context, 2 * channels) if context else 0)

    def resample(channels: int) -> int:  # a resampling residual block, or a 3x3 convolution
        return resnet(channels, channels) if updown else _conv(channels, channels, 3)

    in_channels = config["in_channels"]
    model_in = in_channels * (1 + config["super_resolution"]) + (in_channels + 1) * config["inpainting"]
    total = _linear(base, time_embed) + _linear(time_embed, time_embed) + _conv(model_in, base, 3)
    total += _linear(context, time_embed) if context else 0

    skips, channels = [base], base
    for level, width in enumerate(levels):  # the encoder
        for i in range(layers):
            total += resnet(channels if i == 0 else width, width)
            total += attention(width) if config["attention_levels"][level] else 0
        channels = width
        skips += [width] * layers
        if level < len(levels) - 1:
            total += resample(width)
            skips.append(width)
    total += 2 * resnet(channels, channels) + attention(channels)  # the middle block
    for level in reversed(range(len(levels))):  # the decoder: one more block per level, each taking a skip
        width = levels[level]
        for i in range(layers + 1):
            total += resnet((channels if i == 0 else width) + skips.pop(), width)
            total += attention(width) if config["attention_levels"][level] else 0
        channels = width
        total += resample(width) if level > 0 else 0
    return total + _norm(channels) + _conv(channels, config["out_channels"], 3)


def text_encoder_parameter_count(config: Mapping) -> int:
    """Parameters of `GlideTextEncoder(**config)`."""
    width, context = config["hidden_size"], config["context_length"]
    total = config["vocab_size"] * width + context * width * (1 + config["use_padding_embedding"])
    total += config["num_hidden_layers"] * _transformer_layer(width, key_bias=True)
    return total + (_norm(width) if config["use_final_layer_norm"] else 0)


def clip_image_encoder_parameter_count(config: Mapping) -> int:
    """Parameters of `GlideCLIPImageEncoder(**config)`."""
    width, patch = config["hidden_size"], config["patch_size"]
    positions = 1 + (config["image_size"] // patch) ** 2
    total = 3 * width * patch * patch + (config["num_train_timesteps"] + positions) * width + 2 * _norm(width)
    total += config["num_hidden_layers"] * _transformer_layer(width, key_bias=False)
    return total + _linear(width, config["projection_dim"], bias=False)


def clip_text_encoder_parameter_count(config: Mapping) -> int:
    """Parameters of `GlideCLIPTextEncoder(**config)`."""
    width = config["hidden_size"]
    total = (config["vocab_size"] + config["context_length"]) * width + _norm(width)
    total += config["num_hidden_layers"] * _transformer_layer(width, key_bias=False)
    return total + _linear(width, config["projection_dim"], bias=False)
