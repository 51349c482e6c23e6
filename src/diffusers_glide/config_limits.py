"""Upper bounds of model and scheduler config values, checked before anything is built from a config.

A config.json edited by hand (or tampered with) must not make `from_pretrained` allocate gigabytes before failing:
`num_train_timesteps=10**9` builds 10**9-entry schedule tables, `layers_per_block=10**6` a million modules. Every
bound is about ten times what any released GLIDE model uses (in brackets), so that anything GLIDE-like loads, and
values no GLIDE model could have are refused, naming the key and the allowed range. Within the ranges, the
parameter count estimated from a config ([`MAX_PARAMETERS`]) catches the combinations that are still too big.

This module imports nothing, so the models, the scheduler and the pipelines' folder checks can all use it.
"""

MAX_TRAIN_TIMESTEPS = 100_000  # diffusion steps of the training process [1000; improved DDPM went up to 4000]
MAX_SOLVER_ORDER = 16  # `solver_order` of a DPM-Solver / UniPC scheduler swapped in [2; DPM-Solver takes 1 to 3]
MAX_IMAGE_SIZE = 4096  # UNet `sample_size`, noised-CLIP `image_size` [256; CLIP 64]
MAX_IMAGE_CHANNELS = 64  # UNet `in_channels` / `out_channels` [3 / 6]
MAX_WIDTH = 8192  # channels of a UNet level, transformer widths, text states, projections [768 at the widest]
MAX_LEVELS = 8  # UNet resolution levels [6 in the 256x256 upsamplers]
MAX_LAYERS = 64  # residual blocks per UNet level, transformer blocks [3 per level; 16 text, 12 CLIP]
MAX_HEADS = 256  # attention heads of a layer [12]
MAX_HEAD_DIM = 1024  # channels per UNet attention head [64]
MAX_CONTEXT = 4096  # text positions [128; CLIP 77]
MAX_VOCAB = 1_048_576  # rows of a token table [50257; CLIP 65536]
MAX_PATCH_SIZE = 256  # noised-CLIP patch side [4]
MAX_PATCH_GRID = 128  # noised-CLIP patches per image side, `image_size / patch_size` [16]

# 4 billion: ten times the largest released GLIDE model (the upsamplers' UNet, 398M parameters), i.e. 16 GB of
# float32 weights. Larger models would not be GLIDE's, and this is where a config that passes every range above
# but multiplies them (widths x layers x levels) is refused before it is built.
MAX_PARAMETERS = 4_000_000_000
