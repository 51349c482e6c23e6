"""The command modules of `diffusers-glide` (`diffusers_glide.commands`): each registers its parser and its `run`,
and `main` dispatches to that `run` through the parser's defaults."""

import pkgutil

import pytest

import diffusers_glide.commands
from diffusers_glide.cli import COMMANDS, build_parser, main
from diffusers_glide.commands.arguments import DISPATCH_KEYS, command_arguments

# the modules of diffusers_glide.commands that are no command
SHARED_MODULES = {"arguments", "files", "loading"}
# a command line that each command parses without a usage error
COMMAND_LINES = {
    "generate": ["generate", "a red circle"],
    "inpaint": ["inpaint", "x", "--image", "in.png", "--mask", "mask.png"],
    "img2img": ["img2img", "x", "--image", "in.png"],
    "edit": ["edit", "--image", "in.png", "--edit", "mask.png", "a red circle"],
    "upsample": ["upsample", "x", "--image", "in.png"],
    "serve": ["serve"],
    "download": ["download", "base"],
    "convert": [
        "convert",
        "--checkpoint_path",
        "a.pt",
        "--model_type",
        "base",
        "--vocab_dir",
        "v",
        "--dump_path",
        "o",
    ],
    "train": ["train", "--output_dir", "out"],
    "train-clip": ["train-clip", "--output_dir", "out"],
}
NAMES = [command.NAME for command in COMMANDS]


def test_every_command_module_is_registered():
    modules = {info.name for info in pkgutil.iter_modules(diffusers_glide.commands.__path__)}
    assert {command.__name__.rpartition(".")[2] for command in COMMANDS} == modules - SHARED_MODULES
    assert sorted(NAMES) == sorted(COMMAND_LINES)


@pytest.mark.parametrize("name", NAMES)
def test_each_command_has_its_parser(name, capsys):
    assert main([name, "--help"]) == 0
    assert capsys.readouterr().out.startswith(f"usage: diffusers-glide {name} [-h]")


@pytest.mark.parametrize("command", COMMANDS, ids=NAMES)
def test_the_parser_dispatches_to_the_commands_run(command):
    args = build_parser().parse_args(COMMAND_LINES[command.NAME])
    assert (args.subcommand, args.run) == (command.NAME, command.run)


@pytest.mark.parametrize("command", COMMANDS, ids=NAMES)
def test_main_runs_the_command_that_the_parser_names(command, monkeypatch):
    ran = []
    monkeypatch.setattr(command, "run", lambda args, argv: ran.append((args.subcommand, argv)) or 7)
    argv = COMMAND_LINES[command.NAME]
    assert main(argv) == 7
    assert ran == [(command.NAME, argv)]


def test_the_commands_get_their_flags_without_the_dispatch_entries():
    args = build_parser().parse_args(["train", "--output_dir", "out", "--max_train_steps", "3"])
    flags = vars(command_arguments(args))
    assert not set(DISPATCH_KEYS) & set(flags)
    assert flags == {key: value for key, value in vars(args).items() if key not in DISPATCH_KEYS}
    assert (flags["output_dir"], flags["max_train_steps"]) == ("out", 3)


def test_only_the_named_command_gets_the_flags_of_the_torch_modules(capsys):
    # `main` builds the parser of its command line: the converter's flags only for `convert`
    assert build_parser(["convert"]).parse_args(COMMAND_LINES["convert"]).model_type == "base"
    with pytest.raises(SystemExit):
        build_parser(["generate"]).parse_args(COMMAND_LINES["convert"])
    assert "unrecognized arguments: --checkpoint_path a.pt" in capsys.readouterr().err
