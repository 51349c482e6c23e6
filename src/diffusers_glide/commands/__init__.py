"""The subcommands of `diffusers-glide` (`diffusers_glide.cli`), one module each.

Each command module has a `NAME`, a `register_subcommand(subparsers, argv)` that adds its subparser and flags and
sets `run` as the parser's default (`set_defaults(run=run)`), and a `run(args, argv)` that runs it and returns the
exit code. The shared pieces have their own modules: `arguments` (argument types, the pipelines' defaults, the flag
groups), `files` (output names, the checks before anything loads, reading and writing images) and `loading` (the
device, the dtype and the models of the flags).

Every module here imports only light modules at the top (no torch, no diffusers): help, --version and usage errors
build every parser. The converter's and the trainers' flags are defined by modules that import torch, so `convert`,
`train` and `train-clip` add them only when the command line names their command (`arguments.builds_flags_of`).
"""
