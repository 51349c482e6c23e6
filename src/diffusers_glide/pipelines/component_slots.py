"""What a GLIDE pipeline folder may name: the class of each component, and no code of its own.

diffusers' `DiffusionPipeline.from_pretrained` imports whatever `model_index.json` names: `["my_module", "MyUNet"]`
with a `my_module.py` in the component's folder runs that file (with `trust_remote_code=True`), and any installed
module can be imported by name. A GLIDE pipeline needs none of that, so before diffusers reads the folder every
component entry is checked against its slot, with nothing imported from the folder:

- `unet`, `text_encoder`, `clip_image_encoder`, `clip_text_encoder`: the GLIDE model class of that slot;
- `scheduler`: [`GlideScheduler`], or one of the diffusers schedulers it declares compatible (`_compatibles`: a
  pipeline saved after such a documented swap still loads);
- `tokenizer`, `clip_tokenizer`: a tokenizer class of the `transformers` package (looked up by name there);
- `[null, null]`: no component (the optional CLIP components of a pipeline saved without them).

diffusers' custom-code arguments (`trust_remote_code`, `custom_pipeline`, `custom_revision`) are refused outright.
The scheduler's config is also checked for sizes before diffusers builds a scheduler from it (see
[`check_scheduler_config`]).
"""

import inspect
import json
from collections.abc import Mapping
from pathlib import Path

from diffusers.schedulers.scheduling_utils import SCHEDULER_CONFIG_NAME

from ..models import GlideCLIPImageEncoder, GlideCLIPTextEncoder, GlideTextEncoder, GlideUNet2DModel
from ..schedulers import GlideScheduler
from ..schedulers.scheduling_glide import check_scheduler_config

REMOTE_CODE_ARGUMENTS = ("trust_remote_code", "custom_pipeline", "custom_revision")
TOKENIZER_SLOTS = ("tokenizer", "clip_tokenizer")
_MODEL_CLASSES = {
    "unet": GlideUNet2DModel,
    "text_encoder": GlideTextEncoder,
    "clip_image_encoder": GlideCLIPImageEncoder,
    "clip_text_encoder": GlideCLIPTextEncoder,
}


def refuse_remote_code(kwargs: Mapping, where: str) -> None:
    """Raises for diffusers' custom-code arguments in `kwargs` (a ValueError naming the first one given)."""
    for name in REMOTE_CODE_ARGUMENTS:
        if kwargs.get(name) not in (None, False):
            raise ValueError(
                f"{where}: `{name}` is not supported, got {kwargs[name]!r}: diffusers-glide never runs code from a "
                "model folder or the Hub; its classes are the GLIDE pipelines and components."
            )


def _fitting_entries(slot: str) -> list[list[str]]:
    """The `[library, class]` entries that fit `slot` (empty for a name no GLIDE pipeline has)."""
    if slot in _MODEL_CLASSES:
        cls = _MODEL_CLASSES[slot]
        return [[cls.__module__, cls.__name__]]
    if slot == "scheduler":
        return [[GlideScheduler.__module__, GlideScheduler.__name__]] + [
            ["diffusers", name] for name in GlideScheduler._compatibles
        ]
    return []


def _is_transformers_tokenizer(library, class_name) -> bool:
    if library != "transformers" or not isinstance(class_name, str):
        return False
    import transformers

    found = getattr(transformers, class_name, None)  # transformers' own modules only, imported on first use
    return inspect.isclass(found) and issubclass(found, transformers.PreTrainedTokenizerBase)


def _shown(entry) -> str:
    """The entry as JSON, cut short: a tampered model_index.json may hold anything, and the error is one line."""
    text = json.dumps(entry, default=repr)
    return text if len(text) <= 200 else f"{text[:200]}..."


def _what_fits(slot: str) -> str:
    if slot in TOKENIZER_SLOTS:
        return '["transformers", <a tokenizer class of transformers>]'
    return " or ".join(json.dumps(entry) for entry in _fitting_entries(slot))


def check_component_slots(folder: Path, model_index: Mapping, passed: Mapping) -> None:
    """
    Raises a ValueError naming the slot, the entry found and what fits, for the first component of `model_index`
    (the parsed `model_index.json` of `folder`) whose class does not fit its slot, or that no GLIDE pipeline has.
    Components in `passed` (given to `from_pretrained` as objects) are not loaded from the folder and not checked.
    Then checks the folder's scheduler config sizes (unless a scheduler is passed).
    """
    slots = [*_MODEL_CLASSES, "scheduler", *TOKENIZER_SLOTS]
    for slot, entry in model_index.items():
        if slot.startswith("_") or slot in passed:
            continue
        if not isinstance(entry, (list, tuple)):
            if slot in slots:
                raise ValueError(
                    f"{folder}/model_index.json: `{slot}` must be a [library, class] pair, got {_shown(entry)}; "
                    f"it fits {_what_fits(slot)}."
                )
            continue  # a pipeline config value, not a component
        entry = list(entry)
        if entry == [None, None]:
            continue
        if slot not in slots:
            raise ValueError(
                f"{folder}/model_index.json names a component `{slot}` ({_shown(entry)}) that no GLIDE pipeline "
                f"has; the components are {', '.join(slots)}."
            )
        fits = (
            len(entry) == 2 and _is_transformers_tokenizer(*entry)
            if slot in TOKENIZER_SLOTS
            else entry in _fitting_entries(slot)
        )
        if not fits:
            raise ValueError(
                f"{folder}/model_index.json: the `{slot}` component is {_shown(entry)}, which does not fit that "
                f"slot of a GLIDE pipeline; it must be {_what_fits(slot)}. diffusers-glide never imports other "
                "classes (nor any code in the folder)."
            )
    if "scheduler" not in passed:
        _check_scheduler_file(folder / "scheduler" / SCHEDULER_CONFIG_NAME)


def _check_scheduler_file(path: Path) -> None:
    if not path.is_file():
        return  # diffusers reports the missing file
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a JSON object (the scheduler config), got {type(config).__name__}.")
    try:
        check_scheduler_config(config)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
