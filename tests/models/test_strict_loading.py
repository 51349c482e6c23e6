"""Weights that do not fit the model are an error at load, naming the file, the keys and the shapes
(`models/strict_loading.py`).

Before: a weights file with a renamed or missing key loaded with a logged warning, the missing parameters were left
on the `meta` device, and sampling failed later with `NotImplementedError: Cannot copy out of meta tensor`.
"""

import re

import pytest
import torch
from conftest import tiny_pipeline, tiny_text_encoder, tiny_unet
from safetensors.torch import load_file, save_file

from diffusers_glide import (
    GlideCLIPImageEncoder,
    GlideCLIPTextEncoder,
    GlidePipeline,
    GlideTextEncoder,
    GlideUNet2DModel,
)

WEIGHTS = "diffusion_pytorch_model.safetensors"


def _tiny_models():
    layers = {"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2}
    return {
        GlideUNet2DModel: tiny_unet(16),
        GlideTextEncoder: tiny_text_encoder(vocab_size=10),
        GlideCLIPImageEncoder: GlideCLIPImageEncoder(
            image_size=8, patch_size=4, projection_dim=8, num_train_timesteps=10, **layers
        ),
        GlideCLIPTextEncoder: GlideCLIPTextEncoder(vocab_size=10, context_length=4, projection_dim=8, **layers),
    }


MODEL_CLASSES = list(_tiny_models())


def _saved(cls, folder, **save_kwargs):
    model = _tiny_models()[cls]
    model.save_pretrained(folder, **save_kwargs)
    return model


def _edit_weights(path, edit):
    state = load_file(path)
    edit(state)
    save_file(state, path)


def _message(cls, folder, files, problems: str) -> str:
    return (
        f"{cls.__name__} cannot load {folder} ({files}): the weights do not fit the model its config describes; "
        f"{problems}."
    )


@pytest.mark.parametrize("cls", MODEL_CLASSES, ids=lambda cls: cls.__name__)
def test_renamed_key_is_named_as_missing_and_unexpected(cls, tmp_path):
    model = _saved(cls, tmp_path)
    key = sorted(model.state_dict())[0]
    _edit_weights(tmp_path / WEIGHTS, lambda state: state.update({f"{key}_renamed": state.pop(key)}))
    problems = f"1 missing key ({key}); 1 unexpected key ({key}_renamed)"
    with pytest.raises(ValueError, match=re.escape(_message(cls, tmp_path, WEIGHTS, problems))):
        cls.from_pretrained(tmp_path)


@pytest.mark.parametrize("cls", MODEL_CLASSES, ids=lambda cls: cls.__name__)
def test_wrong_shape_is_named_with_both_shapes(cls, tmp_path):
    model = _saved(cls, tmp_path)
    key = next(name for name, tensor in sorted(model.state_dict().items()) if tensor.ndim == 2)
    rows, columns = model.state_dict()[key].shape
    _edit_weights(tmp_path / WEIGHTS, lambda state: state.update({key: torch.zeros(rows, columns + 1)}))
    problems = f"1 shape mismatch ({key}: file ({rows}, {columns + 1}) vs model ({rows}, {columns}))"
    with pytest.raises(ValueError, match=re.escape(_message(cls, tmp_path, WEIGHTS, problems))):
        cls.from_pretrained(tmp_path)


def test_many_missing_keys_are_counted_and_the_first_five_named(tmp_path):
    model = _saved(GlideUNet2DModel, tmp_path)
    removed = sorted(key for key in model.state_dict() if key.startswith("down_blocks.1."))
    assert len(removed) > 5
    _edit_weights(tmp_path / WEIGHTS, lambda state: [state.pop(key) for key in removed])
    problems = f"{len(removed)} missing keys ({', '.join(removed[:5])}, ... ({len(removed) - 5} more))"
    # diffusers' two loading paths, and a device_map (accelerate fails to place the missing weights first)
    for options in ({}, {"low_cpu_mem_usage": False}, {"device_map": "cpu"}):
        with pytest.raises(ValueError, match=re.escape(_message(GlideUNet2DModel, tmp_path, WEIGHTS, problems))):
            GlideUNet2DModel.from_pretrained(tmp_path, **options)


def test_all_three_kinds_are_reported_together(tmp_path):
    model = _saved(GlideTextEncoder, tmp_path)
    width = model.config.hidden_size

    def edit(state):
        del state["final_layer_norm.bias"]
        state["extra.weight"] = torch.zeros(1)
        state["position_embedding"] = torch.zeros(3, width)

    _edit_weights(tmp_path / WEIGHTS, edit)
    problems = (
        "1 missing key (final_layer_norm.bias); 1 unexpected key (extra.weight); "
        f"1 shape mismatch (position_embedding: file (3, {width}) vs model (8, {width}))"
    )
    with pytest.raises(ValueError, match=re.escape(_message(GlideTextEncoder, tmp_path, WEIGHTS, problems))):
        GlideTextEncoder.from_pretrained(tmp_path)


def test_fitting_weights_load_and_give_the_same_model(tmp_path):
    model = _saved(GlideUNet2DModel, tmp_path)
    loaded, info = GlideUNet2DModel.from_pretrained(tmp_path, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": [], "error_msgs": []}
    assert loaded.state_dict().keys() == model.state_dict().keys()
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    assert isinstance(GlideUNet2DModel.from_pretrained(tmp_path), GlideUNet2DModel)
    assert GlideUNet2DModel.from_pretrained(tmp_path, device_map="cpu").device == torch.device("cpu")


def test_ignore_mismatched_sizes_is_refused(tmp_path):
    _saved(GlideUNet2DModel, tmp_path)
    message = "GlideUNet2DModel.from_pretrained: `ignore_mismatched_sizes=True` is not supported, got True"
    with pytest.raises(ValueError, match=re.escape(message)):
        GlideUNet2DModel.from_pretrained(tmp_path, ignore_mismatched_sizes=True)


def test_sharded_weights_load_and_a_mismatch_in_a_shard_is_named(tmp_path):
    model = _saved(GlideUNet2DModel, tmp_path, max_shard_size="200KB")
    shards = sorted(path.name for path in tmp_path.glob("diffusion_pytorch_model-*-of-*.safetensors"))
    assert len(shards) > 1
    loaded = GlideUNet2DModel.from_pretrained(tmp_path)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())

    last = tmp_path / shards[-1]
    key = sorted(load_file(last))[0]
    shape = tuple(model.state_dict()[key].shape)
    _edit_weights(last, lambda state: state.update({key: torch.zeros(*shape, 2)}))
    problems = f"1 shape mismatch ({key}: file {(*shape, 2)} vs model {shape})"
    with pytest.raises(ValueError, match=re.escape(_message(GlideUNet2DModel, tmp_path, ", ".join(shards), problems))):
        GlideUNet2DModel.from_pretrained(tmp_path)


def test_variant_weights_are_checked_and_named(tmp_path):
    _saved(GlideUNet2DModel, tmp_path)
    model = _saved(GlideUNet2DModel, tmp_path, variant="fp16")
    assert GlideUNet2DModel.from_pretrained(tmp_path, variant="fp16").state_dict().keys() == model.state_dict().keys()
    _edit_weights(tmp_path / "diffusion_pytorch_model.fp16.safetensors", lambda state: state.pop("conv_in.bias"))
    files = "diffusion_pytorch_model.fp16.safetensors"  # the non-variant weights are not named
    message = _message(GlideUNet2DModel, tmp_path, files, "1 missing key (conv_in.bias)")
    with pytest.raises(ValueError, match=re.escape(message)):
        GlideUNet2DModel.from_pretrained(tmp_path, variant="fp16")


def test_pipeline_with_wrong_unet_keys_is_refused_at_load(tmp_path):
    tiny_pipeline("base").save_pretrained(tmp_path)
    path = tmp_path / "unet" / WEIGHTS
    _edit_weights(path, lambda state: state.update({"conv_in.kernel": state.pop("conv_in.weight")}))
    problems = "1 missing key (conv_in.weight); 1 unexpected key (conv_in.kernel)"
    with pytest.raises(ValueError, match=re.escape(_message(GlideUNet2DModel, tmp_path / "unet", WEIGHTS, problems))):
        GlidePipeline.from_pretrained(tmp_path)


def test_clip_guidance_with_missing_keys_is_refused_at_load(tmp_path):
    models = _tiny_models()
    models[GlideCLIPImageEncoder].save_pretrained(tmp_path / "clip_image_encoder")
    models[GlideCLIPTextEncoder].save_pretrained(tmp_path / "clip_text_encoder")
    (tmp_path / "clip_tokenizer").mkdir()  # not reached: the image tower is refused first
    folder = tmp_path / "clip_image_encoder"
    _edit_weights(folder / WEIGHTS, lambda state: state.pop("image_projection.weight"))
    message = _message(GlideCLIPImageEncoder, folder, WEIGHTS, "1 missing key (image_projection.weight)")
    with pytest.raises(ValueError, match=re.escape(message)):
        tiny_pipeline("base").load_clip_guidance(tmp_path)
