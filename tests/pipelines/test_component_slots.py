"""No code from a model folder runs: diffusers' custom-code arguments are refused, and every component that
`model_index.json` names must fit its slot, checked before anything is imported (`pipelines/component_slots.py`).

Before: `GlidePipeline.from_pretrained(folder, trust_remote_code=True)` imported `<component>/<module>.py` from the
folder when model_index.json named `["<module>", "<Class>"]`, and any installed class could be named in any slot.
"""

import json
import re
import shutil
import sys

import pytest
from conftest import tiny_pipeline
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler

from diffusers_glide import GlidePipeline, GlideScheduler, GlideUpsamplePipeline
from diffusers_glide.pipelines.pipeline_glide_base import GlideBasePipeline

# A component module that leaves a marker when it is imported: the tests check that the marker is never written.
CUSTOM_MODULE = """
from pathlib import Path

Path({marker!r}).write_text("imported")


class MyComponent:
    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        Path({marker!r}).write_text("loaded")
        return cls()
"""

GLIDE_UNET = '["diffusers_glide.models.glide_unet", "GlideUNet2DModel"]'
GLIDE_TEXT_ENCODER = '["diffusers_glide.models.glide_text_encoder", "GlideTextEncoder"]'
SCHEDULERS_THAT_FIT = (
    '["diffusers_glide.schedulers.scheduling_glide", "GlideScheduler"] or ["diffusers", "DDPMScheduler"] or '
    '["diffusers", "DDIMScheduler"] or ["diffusers", "DPMSolverMultistepScheduler"] or '
    '["diffusers", "UniPCMultistepScheduler"]'
)


@pytest.fixture(scope="module")
def saved_pipeline(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slots") / "base"
    tiny_pipeline("base").save_pretrained(folder)
    return folder


@pytest.fixture
def folder(saved_pipeline, tmp_path):
    """A fresh copy of a saved tiny base pipeline."""
    copy = tmp_path / "pipeline"
    shutil.copytree(saved_pipeline, copy)
    return copy


def _set_component(folder, name, entry):
    index = json.loads((folder / "model_index.json").read_text())
    index[name] = entry
    (folder / "model_index.json").write_text(json.dumps(index))


def _plant_custom_module(folder, component: str, tmp_path):
    """`<component>/my_module.py` in the folder, named by model_index.json; returns the marker it would write."""
    marker = tmp_path / f"{component}-code-ran"
    (folder / component).mkdir(exist_ok=True)
    (folder / component / "my_module.py").write_text(CUSTOM_MODULE.format(marker=str(marker)))
    _set_component(folder, component, ["my_module", "MyComponent"])
    return marker


def _slot_error(folder, slot, entry, fits) -> str:
    return (
        f"{folder}/model_index.json: the `{slot}` component is {json.dumps(entry)}, which does not fit that slot of a "
        f"GLIDE pipeline; it must be {fits}. diffusers-glide never imports other classes (nor any code in the folder)."
    )


@pytest.mark.parametrize(
    ("argument", "value"),
    [("trust_remote_code", True), ("custom_pipeline", "my_pipeline"), ("custom_revision", "main")],
)
def test_custom_code_arguments_are_refused_and_no_code_runs(folder, tmp_path, argument, value):
    marker = _plant_custom_module(folder, "unet", tmp_path)
    message = (
        f"GlidePipeline.from_pretrained: `{argument}` is not supported, got {value!r}: diffusers-glide never runs "
        "code from a model folder or the Hub; its classes are the GLIDE pipelines and components."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        GlidePipeline.from_pretrained(folder, **{argument: value})
    assert not marker.exists() and "my_module" not in sys.modules


def test_custom_code_arguments_are_refused_by_download_and_load_clip_guidance(folder):
    with pytest.raises(ValueError, match=re.escape("GlidePipeline.download: `trust_remote_code` is not supported")):
        GlidePipeline.download("someone/glide-base", trust_remote_code=True)
    with pytest.raises(ValueError, match=re.escape("load_clip_guidance: `custom_pipeline` is not supported")):
        tiny_pipeline("base").load_clip_guidance(folder, custom_pipeline="x")


@pytest.mark.parametrize("component", ["unet", "text_encoder", "tokenizer", "scheduler"])
def test_custom_module_in_the_folder_is_refused_and_never_imported(folder, tmp_path, component):
    marker = _plant_custom_module(folder, component, tmp_path)
    found = f'the `{component}` component is ["my_module", "MyComponent"]'
    with pytest.raises(ValueError, match=re.escape(found)):
        GlidePipeline.from_pretrained(folder)
    assert not marker.exists() and "my_module" not in sys.modules


@pytest.mark.parametrize(
    ("slot", "entry", "fits"),
    [
        ("scheduler", ["diffusers", "EulerDiscreteScheduler"], SCHEDULERS_THAT_FIT),
        ("unet", ["diffusers", "UNet2DModel"], GLIDE_UNET),
        ("unet", ["diffusers_glide.models.glide_text_encoder", "GlideTextEncoder"], GLIDE_UNET),
        ("text_encoder", ["transformers", "CLIPTextModel"], GLIDE_TEXT_ENCODER),
        ("tokenizer", ["transformers", "AutoTokenizer"], '["transformers", <a tokenizer class of transformers>]'),
        ("tokenizer", ["transformers", "pipeline"], '["transformers", <a tokenizer class of transformers>]'),
        ("tokenizer", ["tokenizers", "Tokenizer"], '["transformers", <a tokenizer class of transformers>]'),
        (
            "clip_image_encoder",
            ["diffusers_glide.models.glide_unet", "GlideUNet2DModel"],
            '["diffusers_glide.models.glide_clip_image_encoder", "GlideCLIPImageEncoder"]',
        ),
    ],
)
def test_classes_that_do_not_fit_their_slot_are_refused(folder, slot, entry, fits):
    _set_component(folder, slot, entry)
    with pytest.raises(ValueError, match=re.escape(_slot_error(folder, slot, entry, fits))):
        GlidePipeline.from_pretrained(folder)


def test_a_component_no_glide_pipeline_has_is_refused(folder):
    _set_component(folder, "safety_checker", ["my_module", "MyComponent"])
    message = (
        f'{folder}/model_index.json names a component `safety_checker` (["my_module", "MyComponent"]) that no GLIDE '
        "pipeline has; the components are unet, text_encoder, clip_image_encoder, clip_text_encoder, scheduler, "
        "tokenizer, clip_tokenizer."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        GlidePipeline.from_pretrained(folder)


def test_slots_are_checked_for_every_glide_pipeline_class(folder):
    _set_component(folder, "unet", ["diffusers", "UNet2DModel"])
    for pipeline_class in (GlideBasePipeline, GlidePipeline):
        with pytest.raises(ValueError, match=re.escape('the `unet` component is ["diffusers", "UNet2DModel"]')):
            pipeline_class.from_pretrained(folder)
    # a component passed as an object is not loaded from the folder, so its entry is not checked
    unet = tiny_pipeline("base").unet
    assert GlidePipeline.from_pretrained(folder, unet=unet).unet is unet


@pytest.mark.parametrize(
    "scheduler_class", [DDPMScheduler, DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler]
)
def test_pipelines_saved_after_a_documented_scheduler_swap_still_load(tmp_path, scheduler_class):
    pipeline = tiny_pipeline("base")
    pipeline.scheduler = scheduler_class.from_config(pipeline.scheduler.config)
    pipeline.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "model_index.json").read_text())["scheduler"] == [
        "diffusers",
        scheduler_class.__name__,
    ]
    loaded = GlidePipeline.from_pretrained(tmp_path)
    assert type(loaded.scheduler) is scheduler_class
    assert loaded.scheduler.config.num_train_timesteps == pipeline.scheduler.config.num_train_timesteps


def test_what_glide_folders_hold_loads(folder, tmp_path):
    index = json.loads((folder / "model_index.json").read_text())
    # the optional noised-CLIP components of a pipeline saved without them
    assert index["clip_image_encoder"] == [None, None] and index["tokenizer"] == ["transformers", "TokenizersBackend"]
    loaded = GlidePipeline.from_pretrained(folder)
    assert isinstance(loaded.scheduler, GlideScheduler) and loaded.clip_image_encoder is None
    # a tokenizer class name of older transformers versions, which transformers still resolves
    _set_component(folder, "tokenizer", ["transformers", "PreTrainedTokenizerFast"])
    assert GlidePipeline.from_pretrained(folder).tokenizer("a red circle").input_ids
    upsample = tmp_path / "upsample"
    tiny_pipeline("upsample").save_pretrained(upsample)
    assert isinstance(GlideUpsamplePipeline.from_pretrained(upsample), GlideUpsamplePipeline)
