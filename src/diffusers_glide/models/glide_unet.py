"""GLIDE's UNet, one class for all four released variants.

The architecture is improved-DDPM's UNet as GLIDE uses it: residual blocks with scale-shift
normalisation that also do the up/down-sampling, attention at chosen resolutions whose keys/values are
prefixed with the text encoder's states, and a timestep embedding to which the projected last text
position is added. The output has 6 channels: epsilon (3) and the variance interpolation value (3).

The variants differ only in what is concatenated to the noisy sample before the first convolution:
- base: `sample`
- upsample (`super_resolution=True`): `sample ++ bilinear_upsample(low_res)`
- base-inpaint (`inpainting=True`): `sample ++ inpaint_image * inpaint_mask ++ inpaint_mask`
- upsample-inpaint (both): `sample ++ inpaint_image * inpaint_mask ++ inpaint_mask ++ bilinear_upsample(low_res)`
"""

import torch
import torch.nn.functional as F
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.unets.unet_2d import UNet2DOutput
from torch import nn

from ..config_limits import (
    MAX_HEAD_DIM,
    MAX_HEADS,
    MAX_IMAGE_CHANNELS,
    MAX_IMAGE_SIZE,
    MAX_LAYERS,
    MAX_LEVELS,
    MAX_WIDTH,
)
from .config_checks import ConfigChecker
from .normalization import Float32GroupNorm
from .parameter_count import unet_parameter_count
from .strict_loading import StrictLoadingMixin


class GlideDownsample(nn.Module):
    """Halve the resolution: a strided 3x3 convolution, or 2x2 average pooling."""

    def __init__(self, channels: int, use_conv: bool):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1) if use_conv else None

    def forward(self, hidden_states: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        if self.conv is not None:
            return self.conv(hidden_states)
        return F.avg_pool2d(hidden_states, kernel_size=2, stride=2)


class GlideUpsample(nn.Module):
    """Double the resolution: nearest-neighbour, optionally followed by a 3x3 convolution."""

    def __init__(self, channels: int, use_conv: bool):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1) if use_conv else None

    def forward(self, hidden_states: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        hidden_states = F.interpolate(hidden_states, scale_factor=2, mode="nearest")
        if self.conv is not None:
            hidden_states = self.conv(hidden_states)
        return hidden_states


class GlideAttentionBlock(nn.Module):
    """Spatial self-attention whose keys/values are prefixed with projected text states.

    Every image position attends over `[text positions..., image positions...]` (no mask), through one
    fused `scaled_dot_product_attention` call, or one call per slice of `slice_size` heads after
    [`~GlideAttentionBlock.set_attention_slice`] (the heads are independent, so the result is the same).
    """

    def __init__(
        self, channels: int, num_heads: int, encoder_hid_dim: int | None, norm_num_groups: int, norm_eps: float
    ):
        super().__init__()
        self.num_heads = num_heads
        self.slice_size = None
        self.norm = Float32GroupNorm(norm_num_groups, channels, eps=norm_eps)
        self.to_qkv = nn.Linear(channels, 3 * channels)
        self.encoder_to_kv = nn.Linear(encoder_hid_dim, 2 * channels) if encoder_hid_dim else None
        self.to_out = nn.Linear(channels, channels)

    def check_slice_size(self, slice_size: int | None) -> None:
        if slice_size is not None and (
            isinstance(slice_size, bool) or not isinstance(slice_size, int) or not 1 <= slice_size <= self.num_heads
        ):
            raise ValueError(
                f"`slice_size` must be a number of heads from 1 to {self.num_heads} (this layer's heads) or None, "
                f"got {slice_size!r}."
            )

    def set_attention_slice(self, slice_size: int | None) -> None:
        """Compute the attention `slice_size` heads at a time (1 to `num_heads`), or all at once with `None`."""
        self.check_slice_size(slice_size)
        self.slice_size = slice_size

    def _split_heads(self, projected: torch.Tensor, parts: int) -> tuple[torch.Tensor, ...]:
        # [B, L, parts*C] -> parts x [B, heads, L, head_dim]
        batch, length, width = projected.shape
        head_dim = width // parts // self.num_heads
        return projected.view(batch, length, parts, self.num_heads, head_dim).permute(2, 0, 3, 1, 4).unbind(0)

    def _attention(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        step = self.slice_size or self.num_heads
        if step >= self.num_heads:
            return F.scaled_dot_product_attention(query, key, value)
        # Fewer heads at a time: the attention weights of only `step` heads exist at once (when SDPA builds them).
        heads = [slice(start, start + step) for start in range(0, self.num_heads, step)]
        return torch.cat([F.scaled_dot_product_attention(query[:, h], key[:, h], value[:, h]) for h in heads], dim=1)

    def forward(self, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None) -> torch.Tensor:
        batch, channels, height, width = hidden_states.shape
        tokens = self.norm(hidden_states).flatten(2).transpose(1, 2)
        query, key, value = self._split_heads(self.to_qkv(tokens), 3)
        if self.encoder_to_kv is not None:
            text_key, text_value = self._split_heads(self.encoder_to_kv(encoder_hidden_states), 2)
            key = torch.cat([text_key, key], dim=2)
            value = torch.cat([text_value, value], dim=2)
        attended = self._attention(query, key, value)
        attended = self.to_out(attended.transpose(1, 2).reshape(batch, height * width, channels))
        return hidden_states + attended.transpose(1, 2).reshape(batch, channels, height, width)


class GlideResnetBlock(nn.Module):
    """Residual block conditioned on the timestep embedding, optionally resampling (GLIDE's `ResBlock`).

    With `time_scale_shift="scale_shift"` the embedding gives a scale and shift applied after the second
    normalisation; with `"default"` it is added before it. `up`/`down` resample both branches between the
    first normalisation and the first convolution, as in the reference.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temb_channels: int,
        dropout: float,
        time_scale_shift: str,
        norm_num_groups: int,
        norm_eps: float,
        up: bool = False,
        down: bool = False,
    ):
        super().__init__()
        self.use_scale_shift = time_scale_shift == "scale_shift"
        self.norm1 = Float32GroupNorm(norm_num_groups, in_channels, eps=norm_eps, apply_silu=True)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, 2 * out_channels if self.use_scale_shift else out_channels)
        self.norm2 = Float32GroupNorm(norm_num_groups, out_channels, eps=norm_eps, apply_silu=not self.use_scale_shift)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None
        if up:
            self.resample = GlideUpsample(in_channels, use_conv=False)
        elif down:
            self.resample = GlideDownsample(in_channels, use_conv=False)
        else:
            self.resample = None

    def forward(self, hidden_states: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        residual = hidden_states
        hidden_states = self.norm1(hidden_states)
        if self.resample is not None:
            hidden_states = self.resample(hidden_states)
            residual = self.resample(residual)
        hidden_states = self.conv1(hidden_states)

        temb = self.time_emb_proj(F.silu(temb)).to(hidden_states.dtype)[:, :, None, None]
        if self.use_scale_shift:
            scale, shift = temb.chunk(2, dim=1)
            hidden_states = F.silu(self.norm2(hidden_states) * (1 + scale) + shift)
        else:
            hidden_states = self.norm2(hidden_states + temb)
        hidden_states = self.conv2(self.dropout(hidden_states))

        if self.conv_shortcut is not None:
            residual = self.conv_shortcut(residual)
        return residual + hidden_states


class GlideDownBlock(nn.Module):
    """One resolution level of the encoder: residual blocks (+ attention), then an optional downsampler."""

    def __init__(
        self,
        in_channels,
        out_channels,
        num_layers,
        num_heads,
        add_downsample,
        resblock_updown,
        block_kwargs,
        attn_kwargs,
    ):
        super().__init__()
        self.resnets = nn.ModuleList(
            GlideResnetBlock(in_channels if i == 0 else out_channels, out_channels, **block_kwargs)
            for i in range(num_layers)
        )
        self.attentions = (
            nn.ModuleList(GlideAttentionBlock(out_channels, num_heads, **attn_kwargs) for _ in range(num_layers))
            if num_heads
            else None
        )
        self.downsampler = None
        if add_downsample:
            if resblock_updown:
                self.downsampler = GlideResnetBlock(out_channels, out_channels, down=True, **block_kwargs)
            else:
                self.downsampler = GlideDownsample(out_channels, use_conv=True)

    def forward(self, hidden_states, temb, encoder_hidden_states):
        skips = ()
        for i, resnet in enumerate(self.resnets):
            hidden_states = resnet(hidden_states, temb)
            if self.attentions is not None:
                hidden_states = self.attentions[i](hidden_states, encoder_hidden_states)
            skips += (hidden_states,)
        if self.downsampler is not None:
            hidden_states = self.downsampler(hidden_states, temb)
            skips += (hidden_states,)
        return hidden_states, skips


class GlideMidBlock(nn.Module):
    """Residual block, attention, residual block at the lowest resolution."""

    def __init__(self, channels, num_heads, block_kwargs, attn_kwargs):
        super().__init__()
        self.resnets = nn.ModuleList(GlideResnetBlock(channels, channels, **block_kwargs) for _ in range(2))
        self.attention = GlideAttentionBlock(channels, num_heads, **attn_kwargs)

    def forward(self, hidden_states, temb, encoder_hidden_states):
        hidden_states = self.resnets[0](hidden_states, temb)
        hidden_states = self.attention(hidden_states, encoder_hidden_states)
        return self.resnets[1](hidden_states, temb)


class GlideUpBlock(nn.Module):
    """One resolution level of the decoder: each residual block first concatenates one encoder skip."""

    def __init__(
        self,
        in_channels,
        out_channels,
        skip_channels,
        num_heads,
        add_upsample,
        resblock_updown,
        block_kwargs,
        attn_kwargs,
    ):
        super().__init__()
        self.resnets = nn.ModuleList(
            GlideResnetBlock((in_channels if i == 0 else out_channels) + skip, out_channels, **block_kwargs)
            for i, skip in enumerate(skip_channels)
        )
        self.attentions = (
            nn.ModuleList(GlideAttentionBlock(out_channels, num_heads, **attn_kwargs) for _ in skip_channels)
            if num_heads
            else None
        )
        self.upsampler = None
        if add_upsample:
            if resblock_updown:
                self.upsampler = GlideResnetBlock(out_channels, out_channels, up=True, **block_kwargs)
            else:
                self.upsampler = GlideUpsample(out_channels, use_conv=True)

    def forward(self, hidden_states, skips, temb, encoder_hidden_states):
        for i, resnet in enumerate(self.resnets):
            hidden_states = resnet(torch.cat([hidden_states, skips[-1 - i]], dim=1), temb)
            if self.attentions is not None:
                hidden_states = self.attentions[i](hidden_states, encoder_hidden_states)
        if self.upsampler is not None:
            hidden_states = self.upsampler(hidden_states, temb)
        return hidden_states


def _check_unet_config(config) -> None:
    check = ConfigChecker("GlideUNet2DModel")
    check.integer("sample_size", config.sample_size, maximum=MAX_IMAGE_SIZE)
    check.integer("in_channels", config.in_channels, maximum=MAX_IMAGE_CHANNELS)
    check.integer("out_channels", config.out_channels, maximum=MAX_IMAGE_CHANNELS)
    check.integer("layers_per_block", config.layers_per_block, maximum=MAX_LAYERS)
    check.integer("norm_num_groups", config.norm_num_groups)  # bounded by the widths it divides
    check.integers("block_out_channels", config.block_out_channels, maximum=MAX_WIDTH, max_length=MAX_LEVELS)
    levels = len(config.block_out_channels)
    check.booleans("attention_levels", config.attention_levels, levels, "one per level of `block_out_channels`")
    factor = 2 ** (levels - 1)
    if config.sample_size % factor:
        check.fail("sample_size", config.sample_size, f"a multiple of {factor} (the UNet's total downsampling factor)")
    check.divides("norm_num_groups", config.norm_num_groups, config.block_out_channels, "`block_out_channels`")
    check.integer("attention_head_dim", config.attention_head_dim, maximum=MAX_HEAD_DIM, optional=True)
    check.integer("num_attention_heads", config.num_attention_heads, maximum=MAX_HEADS, optional=True)
    if (config.attention_head_dim is None) == (config.num_attention_heads is None):
        raise ValueError(
            "GlideUNet2DModel config: set exactly one of `attention_head_dim` and `num_attention_heads` (the other "
            f"None), got attention_head_dim={config.attention_head_dim!r}, "
            f"num_attention_heads={config.num_attention_heads!r}."
        )
    # The middle block always has attention, at the channels of the last level.
    attention_widths = sorted(
        {width for width, has in zip(config.block_out_channels, config.attention_levels, strict=True) if has}
        | {config.block_out_channels[-1]}
    )
    if config.attention_head_dim is not None:
        check.divides("attention_head_dim", config.attention_head_dim, attention_widths, "the attention channels")
    else:
        check.divides("num_attention_heads", config.num_attention_heads, attention_widths, "the attention channels")
    check.integer("encoder_hid_dim", config.encoder_hid_dim, maximum=MAX_WIDTH, optional=True)
    for key in ("super_resolution", "inpainting", "resblock_updown", "low_res_residual"):
        check.boolean(key, config[key])
    if config.low_res_residual and not config.super_resolution:
        raise ValueError(
            "GlideUNet2DModel config: `low_res_residual=True` needs `super_resolution=True` (a `low_res`)."
        )
    if config.low_res_residual and config.out_channels < config.in_channels:
        check.fail(
            "out_channels", config.out_channels, f"at least in_channels ({config.in_channels}) with `low_res_residual`"
        )
    check.choice("resnet_time_scale_shift", config.resnet_time_scale_shift, ("scale_shift", "default"))
    check.number("dropout", config.dropout, "a number in [0, 1)", lambda value: 0 <= value < 1)
    check.number("norm_eps", config.norm_eps, "a number > 0", lambda value: value > 0)
    check.parameter_count(unet_parameter_count(config))


class GlideUNet2DModel(StrictLoadingMixin, ModelMixin, ConfigMixin):
    r"""
    GLIDE's text-conditional UNet. One class serves the base, upsample, base-inpaint and upsample-inpaint
    checkpoints; `super_resolution` and `inpainting` select the extra conditioning inputs.

    Args:
        sample_size (`int`, *optional*, defaults to 64): Height and width of the generated images.
        in_channels (`int`, *optional*, defaults to 3): Channels of the noisy sample (and of `low_res`/`inpaint_image`).
        out_channels (`int`, *optional*, defaults to 6): Output channels: epsilon and the variance value.
        block_out_channels (`tuple[int]`, *optional*, defaults to `(192, 384, 576, 768)`):
            Channels of each resolution level; `block_out_channels[0]` also sets the timestep embedding
            (sinusoid of that size, MLP to 4x that size).
        layers_per_block (`int`, *optional*, defaults to 3):
            Residual blocks per level in the encoder (the decoder has one more, as in diffusers).
        attention_levels (`tuple[bool]`, *optional*, defaults to `(False, True, True, True)`):
            Whether each level has attention after its residual blocks (the middle block always has).
        attention_head_dim (`int`, *optional*, defaults to 64): Channels per attention head.
        num_attention_heads (`int`, *optional*): Fixed head count, used only when `attention_head_dim` is None.
        encoder_hid_dim (`int`, *optional*, defaults to 512):
            Width of the text encoder states; `None` builds an unconditional model.
        super_resolution (`bool`, *optional*, defaults to `False`): The model takes a `low_res` image.
        inpainting (`bool`, *optional*, defaults to `False`): The model takes `inpaint_image` and `inpaint_mask`.
        resnet_time_scale_shift (`str`, *optional*, defaults to `"scale_shift"`):
            `"scale_shift"` (GLIDE) or `"default"` (the embedding is added before the second norm).
        resblock_updown (`bool`, *optional*, defaults to `True`):
            Resample with residual blocks (GLIDE) instead of strided / nearest-neighbour convolutions.
        dropout (`float`, *optional*, defaults to 0.1): Dropout inside residual blocks (training only).
        norm_num_groups (`int`, *optional*, defaults to 32): Groups of every GroupNorm.
        norm_eps (`float`, *optional*, defaults to 1e-5): Epsilon of every GroupNorm.
        low_res_residual (`bool`, *optional*, defaults to `False`):
            Super-resolution models that predict x0 (`prediction_type="sample"` in the scheduler) only: the bilinear
            upsampling of `low_res` is added to output channels 0..2, so the network learns the correction to it,
            and `conv_out` starts at zero, so an untrained model returns exactly that upsampling. Not a GLIDE
            option (OpenAI's upsamplers predict epsilon); the embedded upsamplers use it.
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        sample_size: int = 64,
        in_channels: int = 3,
        out_channels: int = 6,
        block_out_channels: tuple[int, ...] = (192, 384, 576, 768),
        layers_per_block: int = 3,
        attention_levels: tuple[bool, ...] = (False, True, True, True),
        attention_head_dim: int | None = 64,
        num_attention_heads: int | None = None,
        encoder_hid_dim: int | None = 512,
        super_resolution: bool = False,
        inpainting: bool = False,
        resnet_time_scale_shift: str = "scale_shift",
        resblock_updown: bool = True,
        dropout: float = 0.1,
        norm_num_groups: int = 32,
        norm_eps: float = 1e-5,
        low_res_residual: bool = False,
    ):
        super().__init__()
        _check_unet_config(self.config)

        base_channels = block_out_channels[0]
        time_embed_dim = 4 * base_channels
        self.time_proj = Timesteps(base_channels, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(base_channels, time_embed_dim)
        # The last text position, projected into the timestep embedding (GLIDE's `transformer_proj`).
        self.pooled_text_proj = nn.Linear(encoder_hid_dim, time_embed_dim) if encoder_hid_dim else None

        model_in_channels = in_channels + in_channels * super_resolution + (in_channels + 1) * inpainting
        self.conv_in = nn.Conv2d(model_in_channels, base_channels, 3, padding=1)

        def heads(channels: int, with_attention: bool) -> int:
            if not with_attention:
                return 0
            return num_attention_heads if attention_head_dim is None else channels // attention_head_dim

        block_kwargs = {
            "temb_channels": time_embed_dim,
            "dropout": dropout,
            "time_scale_shift": resnet_time_scale_shift,
            "norm_num_groups": norm_num_groups,
            "norm_eps": norm_eps,
        }
        attn_kwargs = {"encoder_hid_dim": encoder_hid_dim, "norm_num_groups": norm_num_groups, "norm_eps": norm_eps}
        num_levels = len(block_out_channels)

        self.down_blocks = nn.ModuleList()
        skip_channels = [base_channels]
        channels = base_channels
        for level, level_channels in enumerate(block_out_channels):
            is_last = level == num_levels - 1
            self.down_blocks.append(
                GlideDownBlock(
                    channels,
                    level_channels,
                    layers_per_block,
                    heads(level_channels, attention_levels[level]),
                    add_downsample=not is_last,
                    resblock_updown=resblock_updown,
                    block_kwargs=block_kwargs,
                    attn_kwargs=attn_kwargs,
                )
            )
            channels = level_channels
            skip_channels += [channels] * (layers_per_block + (0 if is_last else 1))

        self.mid_block = GlideMidBlock(channels, heads(channels, True), block_kwargs, attn_kwargs)

        self.up_blocks = nn.ModuleList()
        for level in reversed(range(num_levels)):
            level_channels = block_out_channels[level]
            level_skips = [skip_channels.pop() for _ in range(layers_per_block + 1)]
            self.up_blocks.append(
                GlideUpBlock(
                    channels,
                    level_channels,
                    level_skips,
                    heads(level_channels, attention_levels[level]),
                    add_upsample=level > 0,
                    resblock_updown=resblock_updown,
                    block_kwargs=block_kwargs,
                    attn_kwargs=attn_kwargs,
                )
            )
            channels = level_channels

        self.norm_out = Float32GroupNorm(norm_num_groups, channels, eps=norm_eps, apply_silu=True)
        self.conv_out = nn.Conv2d(channels, out_channels, 3, padding=1)
        if low_res_residual:
            nn.init.zeros_(self.conv_out.weight)
            nn.init.zeros_(self.conv_out.bias)
        self.gradient_checkpointing = False

    def set_attention_slice(self, slice_size: str | int | list[int | None] | None = "auto") -> None:
        r"""
        Compute attention a few heads at a time, to lower peak memory where the attention weights are materialised.
        The output does not change. A pipeline's `enable_attention_slicing(slice_size)` calls this method, and
        `disable_attention_slicing()` calls it with `None`.

        Args:
            slice_size (`str`, `int`, `list` or `None`, *optional*, defaults to `"auto"`):
                `"auto"`: half of each layer's heads at a time (at least one); `"max"`: one head at a time; an
                integer `n >= 1`: at most `n` heads at a time in every layer; a list: one entry (`None` or 1 to that
                layer's heads) per attention layer, in module order; `None`: all heads at once (no slicing).
        """
        blocks = [module for module in self.modules() if isinstance(module, GlideAttentionBlock)]
        heads = [block.num_heads for block in blocks]
        if slice_size is None:
            sizes = [None] * len(heads)
        elif isinstance(slice_size, str) and slice_size in ("auto", "max"):
            sizes = [max(1, h // 2) if slice_size == "auto" else 1 for h in heads]
        elif isinstance(slice_size, int) and not isinstance(slice_size, bool) and slice_size >= 1:
            sizes = [min(slice_size, h) for h in heads]
        elif isinstance(slice_size, list) and len(slice_size) == len(blocks):
            for block, size in zip(blocks, slice_size, strict=True):
                block.check_slice_size(size)  # all checked before any layer changes
            sizes = slice_size
        else:
            raise ValueError(
                f"`slice_size` must be 'auto', 'max', a number of heads >= 1, a list with one entry per attention layer "
                f"({len(blocks)}, with {heads} heads) or None, got {slice_size!r}."
            )
        for block, size in zip(blocks, sizes, strict=True):
            block.set_attention_slice(size)

    def to_channels_last(self) -> "GlideUNet2DModel":
        r"""
        Store the convolution weights channels-last (faster convolutions on CPUs: ~8% per bfloat16 base step), keeping
        one copy of the weights in memory. Returns the model.

        `self.to(memory_format=torch.channels_last)` alone copies the convolution weights. After `from_pretrained`,
        whose safetensors weights are memory-mapped, the other weights still point into the mapped file, which
        keeps the file's pages, the original convolution weights included, in the process's resident memory: both
        full-size stages in bfloat16 then hold 2.23 GiB instead of 1.58 GiB (`benchmarks/README.md`). This method
        also copies every weight that the conversion left in place, so that the file is no longer mapped.
        """
        tensors = [*self.parameters(), *self.buffers()]
        before = [tensor.data_ptr() for tensor in tensors]
        self.to(memory_format=torch.channels_last)
        with torch.no_grad():
            for tensor, address in zip(tensors, before, strict=True):
                # left in place: not 4-D, or already channels-last (1x1 kernels)
                if tensor.device.type == "cpu" and tensor.data_ptr() == address:
                    tensor.data = tensor.data.clone()
        return self

    def _check_inputs(self, sample, encoder_hidden_states, low_res, inpaint_image, inpaint_mask):
        config = self.config
        if sample.ndim != 4 or sample.shape[1] != config.in_channels:
            raise ValueError(
                f"`sample` must have shape (batch, {config.in_channels}, height, width), got {tuple(sample.shape)}."
            )
        batch, _, height, width = sample.shape
        factor = 2 ** (len(config.block_out_channels) - 1)
        if height % factor or width % factor:
            raise ValueError(
                f"`sample` height and width must be multiples of {factor} for this UNet, got {height}x{width}."
            )
        if config.encoder_hid_dim:
            if encoder_hidden_states is None:
                raise ValueError("`encoder_hidden_states` (the text encoder's last_hidden_state) is required.")
            if (
                encoder_hidden_states.ndim != 3
                or encoder_hidden_states.shape[0] != batch
                or encoder_hidden_states.shape[2] != config.encoder_hid_dim
            ):
                raise ValueError(
                    f"`encoder_hidden_states` must have shape ({batch}, text_length, {config.encoder_hid_dim}), "
                    f"got {tuple(encoder_hidden_states.shape)}."
                )
        if config.super_resolution:
            if low_res is None:
                raise ValueError("This is a super-resolution UNet: `low_res` (the low-resolution image) is required.")
            if low_res.ndim != 4 or low_res.shape[:2] != (batch, config.in_channels):
                raise ValueError(
                    f"`low_res` must have shape ({batch}, {config.in_channels}, low_height, low_width), "
                    f"got {tuple(low_res.shape)}."
                )
        elif low_res is not None:
            raise ValueError("`low_res` was given but this UNet is not a super-resolution model.")
        if config.inpainting:
            if inpaint_image is None or inpaint_mask is None:
                raise ValueError("This is an inpainting UNet: `inpaint_image` and `inpaint_mask` are both required.")
            if inpaint_image.shape != sample.shape:
                raise ValueError(
                    f"`inpaint_image` must have the shape of `sample` {tuple(sample.shape)}, "
                    f"got {tuple(inpaint_image.shape)}."
                )
            if inpaint_mask.shape != (batch, 1, height, width):
                raise ValueError(
                    f"`inpaint_mask` must have shape ({batch}, 1, {height}, {width}) (1 = keep), "
                    f"got {tuple(inpaint_mask.shape)}."
                )
        elif inpaint_image is not None or inpaint_mask is not None:
            raise ValueError("`inpaint_image`/`inpaint_mask` were given but this UNet is not an inpainting model.")

    def _model_input(self, sample, upsampled_low_res, inpaint_image, inpaint_mask) -> torch.Tensor:
        """The one place where the conditioning images are stacked onto the noisy sample."""
        parts = [sample]
        if self.config.inpainting:
            parts += [inpaint_image * inpaint_mask, inpaint_mask]
        if self.config.super_resolution:
            parts.append(upsampled_low_res)
        return torch.cat([part.to(sample.dtype) for part in parts], dim=1)

    def _run(self, block, *args):
        if torch.is_grad_enabled() and self.gradient_checkpointing:
            return self._gradient_checkpointing_func(block, *args)
        return block(*args)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | int,
        encoder_hidden_states: torch.Tensor | None,
        low_res: torch.Tensor | None = None,
        inpaint_image: torch.Tensor | None = None,
        inpaint_mask: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> UNet2DOutput | tuple:
        r"""
        Args:
            sample (`torch.Tensor` of shape `(batch, 3, height, width)`): The noisy images x_t in [-1, 1] scale.
            timestep (`torch.Tensor` or `int`): ORIGINAL diffusion timesteps (0..999), one per sample or shared.
            encoder_hidden_states (`torch.Tensor` of shape `(batch, text_length, encoder_hid_dim)`):
                `GlideTextEncoder(...).last_hidden_state`.
            low_res (`torch.Tensor` of shape `(batch, 3, low_height, low_width)`, *optional*):
                Super-resolution models only: the low-resolution image in [-1, 1], upsampled bilinearly here.
            inpaint_image (`torch.Tensor` of shape `(batch, 3, height, width)`, *optional*):
                Inpainting models only: the known image in [-1, 1] (multiplied by the mask here).
            inpaint_mask (`torch.Tensor` of shape `(batch, 1, height, width)`, *optional*):
                Inpainting models only: 1 where the image is KEPT, 0 where it is generated (GLIDE's convention).
            return_dict (`bool`, *optional*, defaults to `True`): Return a `UNet2DOutput` instead of a tuple.

        Returns:
            [`~diffusers.models.unets.unet_2d.UNet2DOutput`] with `sample` of shape `(batch, 6, height, width)`:
            epsilon (x0 for x0-predicting models) in channels 0..2 and the variance interpolation value in
            channels 3..5.
        """
        self._check_inputs(sample, encoder_hidden_states, low_res, inpaint_image, inpaint_mask)
        batch = sample.shape[0]

        timesteps = torch.as_tensor(timestep, device=sample.device).reshape(-1)
        if timesteps.numel() not in (1, batch):
            raise ValueError(
                f"`timestep` must be a single timestep or one per sample ({batch}), got {timesteps.numel()} values."
            )
        timesteps = timesteps.expand(batch)
        temb = self.time_embedding(self.time_proj(timesteps).to(self.dtype))
        if self.pooled_text_proj is not None:
            encoder_hidden_states = encoder_hidden_states.to(self.dtype)
            temb = temb + self.pooled_text_proj(encoder_hidden_states[:, -1])

        upsampled = None
        if self.config.super_resolution:
            upsampled = F.interpolate(low_res, size=sample.shape[-2:], mode="bilinear", align_corners=False)
        hidden_states = self.conv_in(self._model_input(sample, upsampled, inpaint_image, inpaint_mask).to(self.dtype))
        skips = (hidden_states,)
        for block in self.down_blocks:
            hidden_states, block_skips = self._run(block, hidden_states, temb, encoder_hidden_states)
            skips += block_skips
        hidden_states = self._run(self.mid_block, hidden_states, temb, encoder_hidden_states)
        for block in self.up_blocks:
            level_skips = skips[-len(block.resnets) :]
            skips = skips[: -len(block.resnets)]
            hidden_states = self._run(block, hidden_states, level_skips, temb, encoder_hidden_states)
        output = self.conv_out(self.norm_out(hidden_states))
        if self.config.low_res_residual:
            channels = self.config.in_channels
            output = torch.cat([output[:, :channels] + upsampled.to(output.dtype), output[:, channels:]], dim=1)

        if not return_dict:
            return (output,)
        return UNet2DOutput(sample=output)
