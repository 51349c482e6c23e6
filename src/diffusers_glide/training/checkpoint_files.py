"""The files of a checkpoint of the GLIDE trainer, and how they are read back without running code from them.

A checkpoint folder holds accelerate's `save_state` and our own state:

- accelerate's: the prepared models as safetensors (`model.safetensors`, and `model_1.safetensors` for a trained text
  encoder), and the optimizer, the learning-rate schedule, each process's random generators and (fp16 only) the
  gradient scaler as `torch.save` archives (`optimizer.bin`, `scheduler.bin`, `random_states_<process>.pkl`,
  `scaler.pt`), which `load_state` reads with `torch.load(weights_only=True)`. (Its `sampler.bin` is written for
  iterable datasets only, which this trainer does not use.)
- ours, as safetensors + JSON: the EMA's shadow weights (`ema.safetensors`) and settings and counters (`ema.json`),
  and the global step (`training_state.json`, written last: a folder without it is an unfinished save).

Nothing of ours is an accelerate custom object: accelerate writes those as `custom_checkpoint_<i>.pkl` and reads them
with `weights_only=False`, so a tampered checkpoint ran its code on `--resume_from_checkpoint`. Before anything is
loaded, [`check_checkpoint_folder`] refuses a folder that holds any other file (such a pickle among them) and opens
each `torch.save` archive with the restricted unpickler accelerate will use, so that a refusal names the file.
accelerate only logs a failure to restore the random generators, which would quietly break the exact continuation of
a resumed run: [`check_random_states_restored`] makes it an error.
"""

from __future__ import annotations

import json
import pickle
import random
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import (
    OPTIMIZER_NAME,
    RNG_STATE_NAME,
    SAFE_MODEL_NAME,
    SCALER_NAME,
    SCHEDULER_NAME,
    get_torch_accelerator_backend,
    load,
)
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file, save_file

STATE_FILE = "training_state.json"
EMA_WEIGHTS_FILE = "ema.safetensors"
EMA_STATE_FILE = "ema.json"
OPTIMIZER_FILE = f"{OPTIMIZER_NAME}.bin"
SCHEDULER_FILE = f"{SCHEDULER_NAME}.bin"

# accelerate's `torch.save` archives (one optimizer, one schedule), then every name a checkpoint may hold
_RANDOM_STATES_FILES = re.escape(RNG_STATE_NAME) + r"_\d+\.pkl"
_TORCH_FILES = re.compile(
    "|".join([*map(re.escape, (OPTIMIZER_FILE, SCHEDULER_FILE, SCALER_NAME)), _RANDOM_STATES_FILES])
)
_ALLOWED_FILES = re.compile(
    "|".join(
        [
            _TORCH_FILES.pattern,
            rf"{re.escape(SAFE_MODEL_NAME)}(_\d+)?\.safetensors",
            *map(re.escape, (STATE_FILE, EMA_WEIGHTS_FILE, EMA_STATE_FILE)),
        ]
    )
)
_ALLOWED_DESCRIPTION = (
    f"{SAFE_MODEL_NAME}[_N].safetensors, {OPTIMIZER_FILE}, {SCHEDULER_FILE}, {RNG_STATE_NAME}_N.pkl, {SCALER_NAME}, "
    f"{EMA_WEIGHTS_FILE}, {EMA_STATE_FILE} and {STATE_FILE}"
)
_EARLIER_EMA_FILE = re.compile(r"custom_checkpoint_\d+\.pkl")  # how earlier versions saved the EMA (a custom object)
_RANDOM_STATES = ("random_state", "numpy_random_seed", "torch_manual_seed")


def model_file(index: int) -> str:
    """The name accelerate gives the `index`-th prepared model."""
    return f"{SAFE_MODEL_NAME}{f'_{index}' if index else ''}.safetensors"


def random_states_file(process_index: int) -> str:
    return f"{RNG_STATE_NAME}_{process_index}.pkl"


def check_checkpoint_folder(folder: Path, *, num_models: int, process_index: int, scaler: bool, ema: bool) -> None:
    """
    Refuse to resume from `folder`, before anything of it is loaded, if it holds a file this trainer never writes,
    lacks one that resuming this run needs, or holds a `torch.save` archive that `torch.load(weights_only=True)`
    refuses.

    Args:
        num_models: How many models the run prepared with accelerate (the UNet, and the text encoder if trained).
        process_index: This process's index (whose random states are restored).
        scaler: Whether the run has a gradient scaler (fp16).
        ema: Whether the run keeps an EMA of the weights.
    """
    names = sorted(entry.name for entry in folder.iterdir())
    earlier = [name for name in names if _EARLIER_EMA_FILE.fullmatch(name)]
    if earlier:
        raise ValueError(
            f"Cannot resume from {folder}: it was written by an earlier version of diffusers-glide, which saved the "
            f"EMA weights as a pickle ({earlier[0]}); loading it means unpickling it, which can run any code in it. "
            "Resume it with the version that wrote it, or start a new run."
        )
    for name in names:
        if not (_ALLOWED_FILES.fullmatch(name) and (folder / name).is_file()):
            raise ValueError(
                f"Refusing to resume from {folder}: it holds {name!r}, which is not a file this trainer writes (a "
                f"checkpoint holds only the files {_ALLOWED_DESCRIPTION})."
            )
    has_ema = EMA_WEIGHTS_FILE in names or EMA_STATE_FILE in names
    if has_ema != ema:
        saved = f"with an EMA of the weights ({EMA_WEIGHTS_FILE})" if has_ema else "without an EMA (--ema_decay 0)"
        run = "has none (--ema_decay 0)" if has_ema else "keeps one (--ema_decay > 0)"
        raise ValueError(f"Cannot resume from {folder}: it was saved {saved} and this run {run}.")
    needed = [model_file(i) for i in range(num_models)]
    needed += [OPTIMIZER_FILE, SCHEDULER_FILE, random_states_file(process_index), STATE_FILE]
    if scaler:
        needed.append(SCALER_NAME)
    if ema:
        needed += [EMA_WEIGHTS_FILE, EMA_STATE_FILE]
    missing = [name for name in needed if name not in names]
    if missing:
        raise FileNotFoundError(f"Cannot resume from {folder}: it lacks {', '.join(missing)}.")
    for name in names:
        if _TORCH_FILES.fullmatch(name):
            load_torch_file(folder / name)


def load_torch_file(path: Path):
    """`path` read as accelerate reads it (`torch.load(weights_only=True)`, numpy arrays allowed), memory-mapped;
    a file that this refuses is a `ValueError` naming it."""
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"Refusing to load {path}: it is not a torch.save archive (a zip file) as this trainer writes; a bare "
            "pickle can run code when it is unpickled."
        )
    try:
        return load(path, map_location="cpu", mmap=True)
    except pickle.UnpicklingError as error:
        # torch's message: a paragraph on weights_only, the reason, a pointer to its documentation
        paragraphs = [p.strip() for p in str(error).split("\n\n") if p.strip()]
        reason = paragraphs[1] if len(paragraphs) > 2 else paragraphs[0] if paragraphs else type(error).__name__
        raise ValueError(
            f"Refusing to load {path}: it holds objects other than tensors and plain values, which "
            f"torch.load(weights_only=True) does not unpickle ({' '.join(reason.split())})"
        ) from error
    except Exception as error:  # torch raises several types for truncated or corrupt archives
        raise ValueError(
            f"Cannot read {path} with torch.load(weights_only=True): {' '.join(str(error).split())}"
        ) from error


def check_random_states_restored(folder: Path, process_index: int) -> None:
    """
    Raise unless the random generators hold the states saved in `folder` for `process_index`. Call it right after
    `Accelerator.load_state`, which restores them inside a `try` that only logs a failure.
    """
    path = folder / random_states_file(process_index)
    states = load_torch_file(path)
    missing = [key for key in _RANDOM_STATES if not isinstance(states, dict) or key not in states]
    if missing:
        raise ValueError(f"Cannot resume from {folder}: {path.name} lacks the random states {', '.join(missing)}.")
    device_type, _ = get_torch_accelerator_backend()
    try:
        numpy_states = zip(np.random.get_state(), states["numpy_random_seed"], strict=True)
        restored = (
            random.getstate() == states["random_state"]
            and all(np.array_equal(a, b) for a, b in numpy_states)
            and torch.equal(torch.get_rng_state(), states["torch_manual_seed"])
        )
        saved = states.get(f"torch_{device_type}_manual_seed")
        if restored and saved is not None:  # a GPU's generators: a list of one state per device
            device = torch.get_device_module(device_type)
            current = device.get_rng_state_all() if isinstance(saved, (list, tuple)) else [device.get_rng_state()]
            saved = saved if isinstance(saved, (list, tuple)) else [saved]
            restored = len(current) == len(saved) and all(map(torch.equal, current, saved))
    except (TypeError, ValueError):  # values of other types or lengths than the generators' states
        restored = False
    if not restored:
        raise ValueError(
            f"Cannot resume from {folder}: accelerate could not restore the random generators from {path.name}, so "
            "the run would not continue as it would have without the interruption."
        )


def save_ema(ema: EMAModel, names: Sequence[str], folder: Path) -> None:
    """Write the EMA's shadow weights under `names` (those of the weights it follows) and its settings and counters."""
    shadows = zip(names, ema.shadow_params, strict=True)
    save_file({name: shadow.detach().cpu().contiguous() for name, shadow in shadows}, folder / EMA_WEIGHTS_FILE)
    settings = {key: value for key, value in ema.state_dict().items() if key != "shadow_params"}
    (folder / EMA_STATE_FILE).write_text(json.dumps(settings, indent=2), encoding="utf-8")


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number this file may hold")


def load_ema(ema: EMAModel, named_parameters: Sequence[tuple[str, torch.nn.Parameter]], folder: Path) -> None:
    """Restore `ema` (following `named_parameters`) from `folder`, checking its names, shapes and settings."""
    weights_path, state_path = folder / EMA_WEIGHTS_FILE, folder / EMA_STATE_FILE
    try:
        settings = json.loads(state_path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    except ValueError as error:
        raise ValueError(f"Cannot resume from {folder}: {EMA_STATE_FILE} is not valid JSON: {error}") from error
    if not isinstance(settings, dict) or "shadow_params" in settings:
        raise ValueError(f"Cannot resume from {folder}: {EMA_STATE_FILE} is not a JSON object of the EMA's settings.")
    try:
        shadows = load_file(weights_path)  # safetensors: tensors only, nothing to unpickle
    except Exception as error:  # safetensors' own error type for a truncated or corrupt file
        raise ValueError(
            f"Cannot resume from {folder}: {EMA_WEIGHTS_FILE} is not a safetensors file: {error}"
        ) from error
    names = [name for name, _ in named_parameters]
    missing, unexpected = sorted(set(names) - set(shadows)), sorted(set(shadows) - set(names))
    if missing or unexpected:
        raise ValueError(
            f"Cannot resume from {folder}: {EMA_WEIGHTS_FILE} follows other weights than this run trains "
            f"({len(missing)} missing, e.g. {missing[:2]}; {len(unexpected)} unexpected, e.g. {unexpected[:2]})."
        )
    for name, parameter in named_parameters:
        if shadows[name].shape != parameter.shape:
            raise ValueError(
                f"Cannot resume from {folder}: {EMA_WEIGHTS_FILE} holds {name} with shape "
                f"{tuple(shadows[name].shape)}, the model's is {tuple(parameter.shape)}."
            )
    try:
        ema.load_state_dict({**settings, "shadow_params": [shadows[name] for name in names]})
    except ValueError as error:  # diffusers checks the settings' values and types
        raise ValueError(f"Cannot resume from {folder}: {EMA_STATE_FILE}: {error}") from error
    ema.to(named_parameters[0][1].device)


def read_global_step(folder: Path) -> int:
    path = folder / STATE_FILE
    try:
        step = json.loads(path.read_text(encoding="utf-8"))["global_step"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"Cannot resume from {folder}: {STATE_FILE} holds no global_step ({error!r}).") from error
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"Cannot resume from {folder}: its global_step must be a whole number >= 0, got {step!r}.")
    return step


def write_global_step(folder: Path, step: int) -> None:
    (folder / STATE_FILE).write_text(json.dumps({"global_step": step}), encoding="utf-8")
