"""Refusing batches that cannot fit in memory, before anything is allocated.

One denoising step runs the UNet on the whole batch at once (twice the images under classifier-free guidance), so
`num_images_per_prompt=10000` asks for tens of GB. The estimate below is deliberately generous: it counts every
encoder skip connection, a working set of twelve tensors of the largest activation and an attention score matrix
as if it were materialised (fused attention usually avoids it).
"""

import os

import torch


class BatchTooLargeError(ValueError):
    """The batch would not fit in memory; `max_images` is how many images fit in one call."""

    def __init__(self, message: str, max_images: int):
        super().__init__(message)
        self.max_images = max_images


def unet_bytes_per_row(config, element_size: int, text_length: int) -> int:
    """A generous estimate of the memory one batch row needs in a no-grad UNet forward (see the module docstring)."""
    size, channels = config.sample_size, config.block_out_channels
    last = len(channels) - 1
    skips, largest, attention = channels[0] * size**2, 0, 0
    for level, width in enumerate(channels):
        side = size // 2**level
        activation = width * side**2
        skips += config.layers_per_block * activation + (width * (side // 2) ** 2 if level < last else 0)
        largest = max(largest, activation)
        if config.attention_levels[level] or level == last:
            heads = width // config.attention_head_dim if config.attention_head_dim else config.num_attention_heads
            attention = max(attention, heads * side**2 * (side**2 + text_length))
    return element_size * (skips + 12 * largest + attention)


def available_memory_bytes(device: torch.device) -> int | None:
    """Free memory of `device` (CUDA: free device memory; CPU: the OS's available memory); None when unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_batch_fits(unet, num_images: int, guided: bool, text_length: int, device, what: str) -> None:
    """Raise `BatchTooLargeError` when `num_images` images cannot be denoised in one call on `device`."""
    available = available_memory_bytes(torch.device(device))
    if available is None:
        return
    element_size = torch.finfo(unet.dtype).bits // 8
    rows_per_image = 2 if guided else 1
    # the step's activations, plus the float32 noise, sample and post-processed copies of each image
    per_image = rows_per_image * unet_bytes_per_row(unet.config, element_size, text_length)
    per_image += 4 * 4 * unet.config.in_channels * unet.config.sample_size**2
    needed = num_images * per_image
    if needed <= available:
        return
    max_images = available // per_image
    raise BatchTooLargeError(
        f"{what} asks for {num_images} images in one call, which needs about {_size(needed)} for one denoising "
        f"step, but {device} has {_size(available)} available: at most {max_images} fit. Generate "
        "them in several calls, each with its own generator seed.",
        max_images,
    )


def _size(num_bytes: int) -> str:
    return f"{num_bytes / 2**30:.1f} GiB" if num_bytes >= 2**30 else f"{num_bytes / 2**20:.1f} MiB"
