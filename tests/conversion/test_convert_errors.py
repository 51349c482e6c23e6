"""Clear errors from the converter: bad --options_json files and values, non-finite weights, output folders that
must not be replaced; the script answers exactly like `diffusers-glide convert` (one line, exit code 2)."""

import importlib.util
import json
import re
import shutil

import pytest
import torch
from conftest import REFERENCE_DIR, REPO_ROOT, TOKENIZERS_DIR, clip_options, reference_options

from diffusers_glide.cli import main as cli_main
from diffusers_glide.conversion import load_openai_checkpoint, resolve_options
from diffusers_glide.conversion.clip import resolve_clip_options
from diffusers_glide.variants import get_variant

SCRIPT = REPO_ROOT / "convert_scripts" / "convert_glide_to_diffusers.py"


def _convert(*flags: str) -> list[str]:
    return ["convert", "--model_type", "base", "--vocab_dir", str(TOKENIZERS_DIR), *flags]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"num_channels": -1}, r"GLIDE option num_channels=-1 is invalid: expected a positive multiple of 32\."),
        ({"num_channels": 48}, r"num_channels=48 is invalid: expected a positive multiple of 32\."),
        ({"image_size": "64"}, r'image_size="64" is invalid: expected a positive integer\.'),
        ({"image_size": 64.0}, r"image_size=64.0 is invalid: expected a positive integer\."),
        ({"image_size": True}, r"image_size=true is invalid: expected a positive integer\."),
        ({"xf_width": None}, r"xf_width=null is invalid: expected a positive integer \(checkpoints without a text"),
        ({"num_res_blocks": 0}, r"num_res_blocks=0 is invalid: expected a positive integer\."),
        ({"dropout": 2}, r"dropout=2 is invalid: expected a number in \[0, 1\)\."),
        ({"dropout": "0.1"}, r'dropout="0.1" is invalid: expected a number in \[0, 1\)\.'),
        ({"num_head_channels": 0}, r"num_head_channels=0 is invalid: expected a positive integer or -1\."),
        ({"num_heads_upsample": -2}, r"num_heads_upsample=-2 is invalid: expected a positive integer or -1\."),
        ({"channel_mult": "1,x"}, r'channel_mult="1,x" is invalid: expected "" \(the default of the image size\)'),
        ({"channel_mult": [1, 0]}, r"channel_mult=\[1, 0\] is invalid: expected"),
        ({"attention_resolutions": ""}, r'attention_resolutions="" is invalid: expected positive integers'),
        ({"xf_final_ln": 1}, r"xf_final_ln=1 is invalid: expected true or false\."),
        ({"diffusion_steps": 1}, r"diffusion_steps=1 is invalid: expected an integer >= 2\."),
        ({"noise_schedule": "cosine"}, r'noise_schedule="cosine" is invalid: expected one of "linear", "squaredcos'),
        ({"timestep_respacing": 100}, r"timestep_respacing=100 is invalid: expected a respacing string"),
        ({"timestep_respacing": "ddim999"}, r'timestep_respacing="ddim999" is invalid: expected a valid respacing'),
        # options that are fine alone but not together
        ({"channel_mult": "2,2"}, r'channel_mult="2,2" is invalid: expected a list starting with 1\.'),
        ({"image_size": 34}, r"image_size=34 is invalid: expected a multiple of 4 \(3 levels halve it\)\."),
        ({"image_size": 48, "channel_mult": ""}, r'channel_mult="" is invalid: expected an explicit list, since'),
        ({"xf_heads": 5}, r"xf_heads=5 is invalid: expected a divisor of xf_width \(16\)\."),
        ({"num_head_channels": 24}, r"num_head_channels=24 is invalid: expected a divisor of the widths with"),
        ({"num_head_channels": -1, "num_heads": 2, "num_heads_upsample": 4}, r"num_heads_upsample=4 is invalid"),
    ],
)
def test_bad_option_values_name_the_option_the_value_and_what_is_expected(overrides, message):
    with pytest.raises(ValueError, match=message):
        resolve_options(get_variant("base"), {**reference_options("base"), **overrides})


def test_options_must_be_a_mapping():
    with pytest.raises(
        ValueError, match=r"The GLIDE options must be a JSON object of option names and values, got list"
    ):
        resolve_options(get_variant("base"), [1, 2])
    assert (
        resolve_options(get_variant("base"), reference_options("base"))["num_channels"] == 32
    )  # the fixtures' options pass


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"n_embd": 0}, r"noised-CLIP option n_embd=0 is invalid: expected a positive integer\."),
        ({"n_head_text": "8"}, r'n_head_text="8" is invalid: expected a positive integer\.'),
        ({"max_text_len": None}, r"max_text_len=null is invalid: expected a positive integer\."),
        ({"logit_scale": -1.0}, r"logit_scale=-1.0 is invalid: expected a positive number\."),
        ({"logit_scale": float("inf")}, r"logit_scale=Infinity is invalid: expected a positive number\."),
        ({"beta_schedule": "cosine"}, r'beta_schedule="cosine" is invalid: expected one of "linear"'),
        ({"patch_size": 5}, r"patch_size=5 is invalid: expected a divisor of image_size \(32\)\."),
    ],
)
def test_bad_clip_option_values_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        resolve_clip_options({**clip_options(), **overrides})


@pytest.mark.parametrize(
    "content, message",
    [
        (None, r"error: --options_json file not found: .*options\.json"),
        ("{not json", r"error: --options_json .*options\.json is not valid JSON: Expecting property name"),
        ("[1, 2]", r"error: --options_json .*options\.json must hold a JSON object of option names and values, got a"),
        (
            '{"num_channels": -1}',
            r"error: GLIDE option num_channels=-1 is invalid: expected a positive multiple of 32",
        ),
    ],
)
def test_bad_options_json_files_are_one_line_errors(tmp_path, capsys, content, message):
    options = tmp_path / "options.json"
    if content is not None:
        options.write_text(content)
    flags = ["--checkpoint_path", str(REFERENCE_DIR / "base.pt"), "--options_json", str(options)]
    assert cli_main(_convert(*flags, "--dump_path", str(tmp_path / "out"))) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert re.match(message, err), err
    assert not (tmp_path / "out").exists()


def test_non_finite_weights_are_refused_with_their_keys(tmp_path):
    state_dict = torch.load(REFERENCE_DIR / "base.pt", weights_only=True)
    state_dict["out.2.weight"][0, 0, 0, 0] = float("nan")
    state_dict["transformer.resblocks.0.ln_1.bias"][3] = float("-inf")
    path = tmp_path / "nan.pt"
    torch.save(state_dict, path)
    with pytest.raises(
        ValueError,
        match=r"nan\.pt holds NaN or infinite values in 2 tensor\(s\), so it cannot be a trained model: "
        r"out\.2\.weight, transformer\.resblocks\.0\.ln_1\.bias$",
    ):
        load_openai_checkpoint(path)
    for index in range(7):  # only the first few names are listed
        state_dict[f"extra.{index}"] = torch.full((2,), float("inf"))
    torch.save(state_dict, path)
    with pytest.raises(ValueError, match=r"in 9 tensor\(s\).*: extra\.0, .*, extra\.4, \.\.\. \(4 more\)$"):
        load_openai_checkpoint(path)


def test_the_issue_reproducer_keeps_every_input(tmp_path, monkeypatch, capsys):
    # --dump_path . --overwrite in the folder of the inputs used to delete them all
    work = tmp_path / "work"
    work.mkdir()
    for name in ("base.pt", "base.options.json"):
        shutil.copy(REFERENCE_DIR / name, work)
    for path in TOKENIZERS_DIR.iterdir():
        shutil.copy(path, work)
    (work / "notes.txt").write_text("my notes")
    before = sorted(p.name for p in work.iterdir())
    flags = ["convert", "--checkpoint_path", "base.pt", "--model_type", "base", "--options_json", "base.options.json"]
    # a folder holding an input, given from elsewhere
    absolute = [str(work / flag) if flag.startswith("base.") else flag for flag in flags]
    assert cli_main([*absolute, "--vocab_dir", str(TOKENIZERS_DIR), "--dump_path", str(work), "--overwrite"]) == 2
    assert capsys.readouterr().err == (
        f"error: Refusing to write the output folder {work}: it holds the input {work / 'base.pt'}. Give a new folder.\n"
    )
    monkeypatch.chdir(work)
    assert cli_main([*flags, "--vocab_dir", ".", "--dump_path", ".", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: Refusing to write the output folder {work}: it is the current folder. Give a new folder.\n"
    assert sorted(p.name for p in work.iterdir()) == before
    assert (work / "notes.txt").read_text() == "my notes"
    # the same flags with a new folder convert, and a second run replaces that earlier output
    for _ in range(2):
        assert cli_main([*flags, "--vocab_dir", ".", "--dump_path", "glide-base", "--overwrite"]) == 0
    assert json.loads((work / "glide-base" / "model_index.json").read_text())["_class_name"] == "GlidePipeline"
    assert sorted(p.name for p in work.iterdir()) == sorted([*before, "glide-base"])


def test_the_script_answers_like_the_command(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("convert_glide_to_diffusers", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    missing = tmp_path / "missing.pt"
    assert script.main(_convert("--checkpoint_path", str(missing), "--dump_path", str(tmp_path / "x"))[1:]) == 2
    assert capsys.readouterr().err == f"error: Checkpoint file not found: {missing}\n"
    # its usage message (a real run of the script, through its `sys.exit(main())`, is in test_convert.py)
    assert script.main(["--model_type", "base"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: diffusers-glide convert") and "Traceback" not in err
    assert "error: the following arguments are required: --checkpoint_path\n" in err  # --vocab_dir has a default
