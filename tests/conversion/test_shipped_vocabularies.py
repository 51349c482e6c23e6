"""The vocabularies shipped in the package (`diffusers_glide.vocabularies`) are the converter's default: converting
without `--vocab_dir` writes exactly the folder that `--vocab_dir tests/fixtures/tokenizers` writes."""

import json

import pytest
from conftest import REFERENCE_DIR, TOKENIZERS_DIR, clip_options, reference_options

import diffusers_glide.vocabularies as vocabularies
from diffusers_glide.cli import main as cli_main
from diffusers_glide.conversion import convert_clip_checkpoints, convert_glide_checkpoint
from diffusers_glide.vocabularies import VOCABULARY_FILES, vocabulary_dir


def _files(folder):
    """Every file of a folder, by relative path, with its bytes."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def _convert(tmp_path, name: str, flags: list[str], vocab_dir=None) -> dict[str, bytes]:
    dump = tmp_path / name
    vocab = [] if vocab_dir is None else ["--vocab_dir", str(vocab_dir)]
    assert cli_main(["convert", *flags, *vocab, "--dump_path", str(dump)]) == 0
    return _files(dump)


def test_the_shipped_vocabularies_are_the_fixture_files():
    folder = vocabulary_dir()
    assert folder == vocabularies.VOCABULARY_ROOT and folder.name == "vocabularies"
    assert VOCABULARY_FILES == ("encoder.json.gz", "vocab.bpe.gz", "bpe_simple_vocab_16e6.txt.gz")
    for name in VOCABULARY_FILES:
        assert (folder / name).read_bytes() == (TOKENIZERS_DIR / name).read_bytes(), name
    readme = (folder / "README.md").read_text()
    assert "glide_text2im/tokenizer/" in readme and "MIT" in readme
    assert "MIT License\n\nCopyright (c) 2021 OpenAI" in (folder / "LICENSE").read_text()


def test_a_package_without_its_vocabularies_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(vocabularies, "VOCABULARY_ROOT", tmp_path)
    (tmp_path / "encoder.json.gz").write_bytes((TOKENIZERS_DIR / "encoder.json.gz").read_bytes())
    with pytest.raises(FileNotFoundError, match=r"vocab\.bpe\.gz, bpe_simple_vocab_16e6\.txt\.gz are missing from"):
        vocabulary_dir()


def test_convert_without_vocab_dir_writes_the_same_folder(tmp_path):
    flags = ["--checkpoint_path", str(REFERENCE_DIR / "base-inpaint.pt"), "--model_type", "base-inpaint"]
    flags += ["--options_json", str(REFERENCE_DIR / "base-inpaint.options.json")]
    shipped = _convert(tmp_path, "shipped", flags)
    given = _convert(tmp_path, "given", flags, vocab_dir=TOKENIZERS_DIR)
    assert sorted(shipped) == sorted(given)
    assert {"tokenizer/tokenizer.json", "unet/diffusion_pytorch_model.safetensors", "README.md"} <= set(shipped)
    assert [name for name in shipped if shipped[name] != given[name]] == []


def test_convert_clip_without_vocab_dir_writes_the_same_folder(tmp_path):
    flags = ["--model_type", "clip", "--options_json", str(REFERENCE_DIR / "clip.config.json"), "--checkpoint_path"]
    flags += [str(REFERENCE_DIR / "clip_image_enc.pt"), str(REFERENCE_DIR / "clip_text_enc.pt")]
    shipped = _convert(tmp_path, "shipped", flags)
    given = _convert(tmp_path, "given", flags, vocab_dir=TOKENIZERS_DIR)
    assert sorted(shipped) == sorted(given)
    assert {"clip_tokenizer/tokenizer.json", "clip_image_encoder/diffusion_pytorch_model.safetensors"} <= set(shipped)
    assert [name for name in shipped if shipped[name] != given[name]] == []


def test_the_python_api_defaults_to_the_shipped_vocabularies():
    converted = convert_glide_checkpoint(REFERENCE_DIR / "base.pt", "base", options=reference_options("base"))
    clip = convert_clip_checkpoints(
        [REFERENCE_DIR / "clip_image_enc.pt", REFERENCE_DIR / "clip_text_enc.pt"], options=clip_options()
    )
    assert len(converted.tokenizer) == 50257 and len(clip.tokenizer) == 49408
    case = json.loads((REFERENCE_DIR / "tokenizer_cases.json").read_text())["cases"][0]  # OpenAI's own tokenizers
    assert converted.tokenizer(case["prompt"])["input_ids"] == case["gpt2_ids"]
    assert clip.tokenizer(case["prompt"], add_special_tokens=False)["input_ids"] == case["clip_ids"]


def test_vocab_dir_still_takes_another_folder(tmp_path, capsys):
    (tmp_path / "other").mkdir()
    flags = ["convert", "--checkpoint_path", str(REFERENCE_DIR / "base.pt"), "--model_type", "base"]
    flags += ["--options_json", str(REFERENCE_DIR / "base.options.json"), "--vocab_dir", str(tmp_path / "other")]
    assert cli_main([*flags, "--dump_path", str(tmp_path / "out")]) == 2
    assert (
        f"GLIDE tokenizer folder {str(tmp_path / 'other')!r} is missing encoder.json[.gz]" in capsys.readouterr().err
    )
    assert not (tmp_path / "out").exists()


def test_the_help_names_the_default(capsys):
    assert cli_main(["convert", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "(default: GLIDE's vocabularies, shipped with diffusers-glide)" in help_text
    assert "--checkpoint_path base.pt --model_type base --dump_path glide-base" in help_text
