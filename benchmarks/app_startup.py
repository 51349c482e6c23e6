"""How long the web app takes to start and to make its first image, as a user meets it.

Starts `diffusers-glide serve` (the embedded models) in a fresh process, times it until the page answers, then
asks for images through Gradio's own client, as the Generate button does with its defaults (15 DPM-Solver++ steps
with guidance 3, one 32x32 image; then the same with upsampling to 128x128, 5 DPM-Solver++ steps):

    python benchmarks/app_startup.py --repeats 3
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

GENERATE = ["a red circle on a blue background", "", 3.0, 15, "DPM-Solver++", 0, False, 1, 0.0]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_page(url: str, process, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer in {timeout} s")


def measure_once(threads: int | None) -> dict:
    from gradio_client import Client

    port = _free_port()
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {}))
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "diffusers_glide.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_for_page(url, process)
        startup = time.perf_counter() - started
        client = Client(url, verbose=False)
        timings = {"startup_s": startup}
        for name, arguments in (
            ("first_image_s", GENERATE),
            ("second_image_s", GENERATE),
            ("upsampled_image_s", [*GENERATE, True, 5, "DPM-Solver++"]),
        ):
            began = time.perf_counter()
            client.predict(*arguments, api_name="/generate")
            timings[name] = time.perf_counter() - began
        return timings
    finally:
        process.terminate()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="fresh servers to time (default: %(default)s)")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS of the server (default: torch's)")
    args = parser.parse_args()
    runs = [measure_once(args.threads) for _ in range(args.repeats)]
    for key in runs[0]:
        values = [run[key] for run in runs]
        print(f"{key:>18}: median {statistics.median(values):6.2f} s  (runs: {', '.join(f'{v:.2f}' for v in values)})")


if __name__ == "__main__":
    main()
