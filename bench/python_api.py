#!/usr/bin/env python3
"""The Python package's cost: prints figures with their goals, asserts nothing.

1. `authprobe.check(url, bearer_token=…)` against the harness's nginx vs `authprobe check`
   run from the shell for the same probe: median wall time of N each, and the difference.
   Goal: Python adds at most 15 ms.
2. `import authprobe` in a fresh interpreter: median of N. Goal: under 20 ms.

Needs the test servers (scripts/servers.sh up). Uses target/release/authprobe (built if
missing), or the binary at $AUTHPROBE_BIN:
    python3 bench/python_api.py [RUNS=20]
"""

import os
import statistics
import subprocess
import sys
import time

from harness import harness_env  # noqa: E402 (bench/ is on sys.path when run as a script)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))


def median_ms(samples):
    return statistics.median(samples) * 1000


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    binary = os.environ.get("AUTHPROBE_BIN")
    if not binary:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
        binary = os.path.join(ROOT, "target/release/authprobe")
        os.environ["AUTHPROBE_BIN"] = binary
    env = harness_env()
    url = f"https://localhost:{env['AP_HTTPS_PORT']}/bearer"
    token = env["AP_BEARER_TOKEN"]
    ca = env["AP_CA"]

    import authprobe

    cli_env = dict(os.environ, BENCH_TOKEN=token)
    cli_args = [binary, "check", url, "--bearer-env", "BENCH_TOKEN", "--ca", ca, "--format", "json", "--quiet"]
    cli, py = [], []
    # Interleaved, so that a slow moment of the machine hits both alike.
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(cli_args, env=cli_env, capture_output=True)
        cli.append(time.perf_counter() - start)
        if done.returncode != 0:
            sys.exit(f"the CLI check failed: {done.stdout.decode()[:400]}")
        start = time.perf_counter()
        result = authprobe.check(url, bearer_token=token, ca=ca)
        py.append(time.perf_counter() - start)
        if not result.passed:
            sys.exit(f"authprobe.check failed: {result}")

    imports = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c",
             "import time; t = time.perf_counter(); import authprobe; print(time.perf_counter() - t)"],
            env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python")),
            capture_output=True, text=True, check=True,
        )
        imports.append(float(done.stdout))

    print(f"binary: {binary}; {runs} runs each; python {sys.version.split()[0]}")
    print(f"authprobe check (CLI)      median {median_ms(cli):7.2f} ms")
    print(f"authprobe.check (Python)   median {median_ms(py):7.2f} ms")
    print(f"Python's extra             {median_ms(py) - median_ms(cli):7.2f} ms   (goal: at most 15 ms)")
    print(f"import authprobe           median {median_ms(imports):7.2f} ms   (goal: under 20 ms)")


if __name__ == "__main__":
    main()
