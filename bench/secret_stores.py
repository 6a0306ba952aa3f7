#!/usr/bin/env python3
"""Secret stores benchmark: prints figures with their goals, asserts nothing.

A run of N http probes (the harness's nginx, bearer auth), each reading its own KV v2
secret from the harness's OpenBao through one AppRole store, against the same N probes
with the token in an environment variable: the run's wall time (median of R runs), what
the store adds per probe, the median `secret` stage, and the logins made per run.
Goal: one login per run; the store adds at most 2x its round trip per probe (the round
trip: the median time of one read on a new TLS connection, printed). serve's reuse of a
static value (one store read for many scrapes) is checked by tests/live_secret_stores.rs.

Needs the test servers (scripts/servers.sh up) and a release build:
    python3 bench/secret_stores.py [N=50] [RUNS=5]
"""

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from harness import harness_env  # noqa: E402 (bench/ is on sys.path when run as a script)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("AUTHPROBE_BIN", os.path.join(ROOT, "target", "release", "authprobe"))




def vault(env, method, path, body=None):
    import ssl

    context = ssl.create_default_context(cafile=env["AP_CA"])
    request = urllib.request.Request(f"{env['AP_VAULT_ADDR']}/v1/{path}", method=method)
    request.add_header("X-Vault-Token", env["AP_VAULT_ROOT_TOKEN"])
    data = None if body is None else json.dumps(body).encode()
    started = time.perf_counter()
    with urllib.request.urlopen(request, data=data, context=context, timeout=10) as answer:
        answer.read()
    return time.perf_counter() - started


def config(n, from_store):
    out = []
    if from_store:
        out.append(
            '[[secret_store]]\nname = "bao"\ntype = "vault"\naddress = "${AP_VAULT_ADDR}"\ntls = { ca = "${AP_CA}" }\n'
            'auth = { type = "approle", role_id = "${AP_VAULT_ROLE_ID}", secret_id = "${AP_VAULT_SECRET_ID}" }\n'
        )
    for i in range(n):
        token = f"${{bao:secret/bench-{i}#token}}" if from_store else "${AP_BEARER_TOKEN}"
        out.append(
            f'[[probe]]\nname = "p{i}"\nkind = "http"\nurl = "https://localhost:${{AP_HTTPS_PORT}}/bearer"\n'
            f'tls = {{ ca = "${{AP_CA}}" }}\nauth = {{ type = "bearer", token = "{token}" }}\n'
        )
    return "\n".join(out)


def run(path, env):
    started = time.perf_counter()
    out = subprocess.run([BIN, "run", "-c", path, "--format", "json", "-v"], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    report = json.loads(out.stdout)
    secret_ms = [s["duration_ms"] for p in report["probes"] for s in p["stages"] if s["name"] == "secret"]
    passed = report["summary"]["passed"]
    return wall, secret_ms, passed


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    env = dict(os.environ)
    env.update(harness_env())
    if not os.path.exists(BIN):
        sys.exit(f"no release build at {BIN}: cargo build --release")
    # The bench's secrets, with the root token; and the store's round trip, measured as one
    # plain read on a new connection (as the probe makes it).
    policy = "".join(f'path "secret/data/bench-{i}" {{ capabilities = ["read"] }}\n' for i in range(n))
    for i in range(n):
        vault(env, "POST", f"secret/data/bench-{i}", {"data": {"token": env["AP_BEARER_TOKEN"]}})
    current = json.loads(urllib.request.urlopen(
        urllib.request.Request(f"{env['AP_VAULT_ADDR']}/v1/sys/policies/acl/probe-read", headers={"X-Vault-Token": env["AP_VAULT_ROOT_TOKEN"]}),
        context=__import__("ssl").create_default_context(cafile=env["AP_CA"]),
    ).read())["data"]["policy"]
    if "bench-0" not in current:
        vault(env, "PUT", "sys/policies/acl/probe-read", {"policy": current + policy})
    rtt = statistics.median(vault(env, "GET", "secret/data/bench-0") for _ in range(20))
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for from_store in (False, True):
            path = os.path.join(tmp, f"store-{from_store}.toml")
            with open(path, "w") as f:
                f.write(config(n, from_store))
            walls, secrets, passed = [], [], []
            for _ in range(runs):
                wall, secret_ms, ok = run(path, env)
                walls.append(wall)
                secrets.extend(secret_ms)
                passed.append(ok)
            results[from_store] = (statistics.median(walls), secrets, min(passed))
        logins = subprocess.run([BIN, "run", "-c", os.path.join(tmp, "store-True.toml"), "-v"], env=env, capture_output=True, text=True)
        login_count = len(re.findall(r"logged in with AppRole", logins.stdout))
    env_wall, _, env_passed = results[False]
    store_wall, secret_ms, store_passed = results[True]
    print(f"1. {n} http probes, median of {runs} runs (passed: {env_passed}/{n} from env, {store_passed}/{n} from the store)")
    print(f"   token from the environment: {env_wall * 1000:.0f} ms")
    print(f"   token from OpenBao (AppRole): {store_wall * 1000:.0f} ms (+{(store_wall - env_wall) * 1000:.0f} ms)")
    print(f"   store round trip (one read, new TLS connection, curl-like): {rtt * 1000:.1f} ms")
    added = (store_wall - env_wall) / n
    print(f"   added wall time per probe: {added * 1000:.1f} ms = {added / rtt:.1f}x the round trip (goal: <= 2x)")
    print(f"   secret stage per probe, all {n} at once on this machine: median {statistics.median(secret_ms):.0f} ms, p90 {sorted(secret_ms)[int(len(secret_ms) * 0.9)]:.0f} ms "
          f"= {statistics.median(secret_ms) / (rtt * 1000):.1f}x the round trip (queued behind one login, one mount look-up and {n} TLS handshakes)")
    print(f"   AppRole logins in one run: {login_count} lines saying so in -v (one per probe shown; goal: one login per run)")


if __name__ == "__main__":
    main()
