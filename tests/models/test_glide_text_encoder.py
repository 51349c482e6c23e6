"""GlideTextEncoder: parity with the reference text transformer, round trip, input and config checks.

Token ids are not checked against `vocab_size` here: models check shapes only, the pipelines check values."""

import json
import re

import pytest
import torch
from conftest import MODEL_TYPES, load_reference, max_abs_diff, public_config

from diffusers_glide import GlideTextEncoder, GlideUNet2DModel


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_text_states_match_reference(converted_folders, model_type):
    text_encoder = GlideTextEncoder.from_pretrained(converted_folders[model_type], subfolder="text_encoder")
    unet = GlideUNet2DModel.from_pretrained(converted_folders[model_type], subfolder="unet")
    ref, _ = load_reference(f"{model_type}.forward")
    with torch.no_grad():
        states = text_encoder(ref["tokens"], attention_mask=ref["mask"]).last_hidden_state
        pooled = unet.pooled_text_proj(states[:, -1])
    assert states.shape == (3, 16, 16)
    # The reference returns xf_out channels-first (NCL); ours is NLC like transformers.
    diff = max_abs_diff(states.permute(0, 2, 1), ref["xf_out"])
    assert diff <= 1e-4, f"xf_out max abs diff {diff}"
    diff = max_abs_diff(pooled, ref["xf_proj"])
    assert diff <= 1e-4, f"xf_proj max abs diff {diff}"


def test_padding_positions_use_padding_embedding_not_tokens():
    torch.manual_seed(0)
    encoder = GlideTextEncoder(
        vocab_size=50, context_length=6, hidden_size=8, num_hidden_layers=1, num_attention_heads=2
    )
    ids = torch.tensor([[5, 6, 7, 49, 49, 49]])
    mask = torch.tensor([[True, True, True, False, False, False]])
    other_ids = ids.clone()
    other_ids[0, 3:] = 3  # different ids at padded positions must not matter
    with torch.no_grad():
        first = encoder(ids, mask).last_hidden_state
        second = encoder(other_ids, mask).last_hidden_state
        unmasked = encoder(ids, torch.ones_like(mask)).last_hidden_state
    assert torch.equal(first, second)
    assert not torch.allclose(first, unmasked)


def test_tuple_output_and_hidden_states():
    torch.manual_seed(0)
    encoder = GlideTextEncoder(
        vocab_size=50, context_length=4, hidden_size=8, num_hidden_layers=2, num_attention_heads=2
    )
    ids = torch.tensor([[1, 2, 3, 4]])
    mask = torch.ones_like(ids, dtype=torch.bool)
    with torch.no_grad():
        output = encoder(ids, mask, output_hidden_states=True)
        as_tuple = encoder(ids, mask, return_dict=False)
    assert len(output.hidden_states) == 3  # embeddings + one per layer
    assert torch.equal(as_tuple[0], output.last_hidden_state)


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    encoder = GlideTextEncoder(
        vocab_size=50, context_length=4, hidden_size=8, num_hidden_layers=1, num_attention_heads=2
    )
    encoder.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    reloaded = GlideTextEncoder.from_pretrained(tmp_path)
    assert public_config(reloaded.config) == public_config(encoder.config)
    ids, mask = torch.tensor([[1, 2, 0, 0]]), torch.tensor([[True, True, False, False]])
    with torch.no_grad():
        assert torch.equal(encoder(ids, mask).last_hidden_state, reloaded(ids, mask).last_hidden_state)


def test_bad_inputs_raise_clear_errors():
    encoder = GlideTextEncoder(
        vocab_size=50, context_length=4, hidden_size=8, num_hidden_layers=1, num_attention_heads=2
    )
    with pytest.raises(ValueError, match=r"input_ids.*\(batch, 4\).*\(1, 3\)"):
        encoder(torch.tensor([[1, 2, 3]]), torch.tensor([[True, True, True]]))
    with pytest.raises(ValueError, match="attention_mask.*required"):
        encoder(torch.tensor([[1, 2, 3, 4]]))
    with pytest.raises(ValueError, match=r"attention_mask.*\(1, 4\).*\(1, 3\)"):
        encoder(torch.tensor([[1, 2, 3, 4]]), torch.tensor([[True, True, True]]))


def _tiny_encoder(**overrides) -> GlideTextEncoder:
    config = dict(vocab_size=50, context_length=4, hidden_size=8, num_hidden_layers=1, num_attention_heads=2)
    return GlideTextEncoder(**{**config, **overrides})


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("vocab_size", 0, "an integer in [1, 1048576]"),
        ("context_length", "4", "an integer in [1, 4096]"),
        ("hidden_size", -8, "an integer in [1, 8192]"),
        ("num_hidden_layers", 0, "an integer in [1, 64]"),
        ("num_attention_heads", 3, "a divisor of `hidden_size` (8,)"),
        ("num_attention_heads", 2.0, "an integer in [1, 256]"),
        ("use_final_layer_norm", "true", "true or false (a boolean, not a string or number)"),
        ("use_padding_embedding", 0, "true or false (a boolean, not a string or number)"),
        ("layer_norm_eps", 0, "a number > 0"),
        ("layer_norm_eps", -1e-5, "a number > 0"),
    ],
)
def test_impossible_configs_name_the_key_value_and_expectation(key, value, expected):
    message = f"GlideTextEncoder config: `{key}` must be {expected}, got {value!r}."
    with pytest.raises(ValueError, match=re.escape(message)):
        _tiny_encoder(**{key: value})


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"vocab_size": -1}, "`vocab_size` must be an integer in [1, 1048576], got -1."),
        # 9 channels cannot be split into the 2 heads.
        ({"hidden_size": 9}, "`num_attention_heads` must be a divisor of `hidden_size` (9,), got 2."),
        ({"use_padding_embedding": "false"}, "`use_padding_embedding` must be true or false (a boolean, not a string"),
    ],
)
def test_edited_config_json_fails_in_from_pretrained(tmp_path, edit, message):
    _tiny_encoder().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, **edit}))
    with pytest.raises(ValueError, match=re.escape(f"GlideTextEncoder config: {message}")):
        GlideTextEncoder.from_pretrained(tmp_path)
