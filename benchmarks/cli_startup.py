"""How long the `diffusers-glide` command takes to answer before any model loads: help, a usage error, and the
imports of `serve` (the web app) up to loading its models. Each command runs in a fresh interpreter, `--repeats`
times, interleaved so that a busy machine slows them alike; the median and the fastest run are printed.
`--before SRC` also runs each command with another copy of the package first on the path (e.g. the `src/` of an
earlier commit: `git archive <commit> src | tar -x -C old`), interleaved with this one.

    python benchmarks/cli_startup.py --repeats 5 [--before old/src]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass (the interpreter alone)": ["-c", "pass"],
    "diffusers-glide --help": ["-m", "diffusers_glide.cli", "--help"],
    "diffusers-glide generate --help": ["-m", "diffusers_glide.cli", "generate", "--help"],
    "diffusers-glide generate x --steps 0 (usage error)": [
        "-m",
        "diffusers_glide.cli",
        "generate",
        "x",
        "--steps",
        "0",
    ],
    "serve's imports (the CLI and diffusers_glide.app)": ["-c", "import diffusers_glide.cli, diffusers_glide.app"],
    "import torch": ["-c", "import torch"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--before", help="the src/ folder of another copy of the package, timed alongside")
    args = parser.parse_args()
    versions = {"this checkout": dict(os.environ)}
    if args.before:
        versions["--before"] = {**os.environ, "PYTHONPATH": args.before}
    seconds = {(version, name): [] for name in COMMANDS for version in versions}
    for _ in range(args.repeats):
        for name, command in COMMANDS.items():
            for version, env in versions.items():
                start = time.perf_counter()
                subprocess.run([sys.executable, *command], capture_output=True, check=False, env=env)
                seconds[version, name].append(time.perf_counter() - start)
    print(f"load average: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores); {args.repeats} runs each")
    print("| command | " + " | ".join(f"{v}: median (s) | {v}: fastest (s)" for v in versions) + " |")
    print("|---|" + "---|---|" * len(versions))
    for name in COMMANDS:
        cells = [f"{statistics.median(seconds[v, name]):.2f} | {min(seconds[v, name]):.2f}" for v in versions]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
