"""Seconds of the same sampling call with different numbers of torch CPU threads (`diffusers-glide --threads`).

On a machine that other busy processes share, more threads than free cores can make a call much slower: OpenMP
threads wait for each other at every operator. This runs one call (the embedded 32x32 model, 50 ancestral steps
with classifier-free guidance, its configured sampler) for each thread count in turn, `--repeats` times, in one
process, and prints every time with the load average.

    python benchmarks/cpu_threads.py --threads 1 2 --repeats 5
"""

import argparse
import os
import statistics
import time

import torch

from diffusers_glide import GlidePipeline
from diffusers_glide.embedded import embedded_model_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    pipe = GlidePipeline.from_pretrained(embedded_model_path())
    pipe.set_progress_bar_config(disable=True)

    def call():
        pipe(
            "a red circle on a blue background",
            num_inference_steps=args.steps,
            generator=torch.Generator().manual_seed(0),
        )

    call()  # warm-up
    seconds = {threads: [] for threads in args.threads}
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.1f}")
    for _ in range(args.repeats):
        for threads in args.threads:
            torch.set_num_threads(threads)
            start = time.perf_counter()
            call()
            seconds[threads].append(time.perf_counter() - start)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    print(f"| threads | median (s) | fastest (s) | slowest (s) | every run ({args.steps} steps) |")
    print("|---|---|---|---|---|")
    for threads, values in seconds.items():
        runs = ", ".join(f"{value:.2f}" for value in values)
        print(f"| {threads} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} | {runs} |")


if __name__ == "__main__":
    main()
