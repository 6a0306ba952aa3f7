#!/usr/bin/env python3
"""`authprobe serve` benchmark: prints figures with their goals, asserts nothing.

1. Overhead of one scrape: wall time of GET /probe (kept-alive connection, as Prometheus
   scrapes) minus the probe's own probe_duration_seconds, median of N scrapes of an HTTP
   probe against the harness's nginx. Goal: under 1 ms.
2. 200 concurrent scrapes of 200 different probes (one connection each, scrape timeout
   header 10 s): how many answered, how many failed or timed out, and the slowest answer.
   Goal: all 200 answered, none timed out.
3. A probe through a `[[tunnel]]` (the harness's SSH bastion, PostgreSQL behind it): the
   first scrape opens and logs into the tunnel, as every scrape did before serve kept
   tunnels; later scrapes reuse it after a ping. Median scrape wall time of each, their
   ratio, and bastion logins for all the scrapes. Goal: one login; later scrapes faster.

Needs the test servers (scripts/servers.sh up) and a release build:
    python3 bench/serve.py [SCRAPES=500]
"""

import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from harness import harness_env  # noqa: E402 (bench/ is on sys.path when run as a script)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))




def start_serve(binary, config):
    proc = subprocess.Popen(
        [binary, "serve", "-c", config, "--listen", "127.0.0.1:0", "--min-interval", "0s"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stderr.readline()
    m = re.search(r"listening on http://(\S+)", line)
    if not m:
        proc.kill()
        sys.exit(f"authprobe serve did not start: {line}")
    host, port = m.group(1).rsplit(":", 1)
    threading.Thread(target=lambda: proc.stderr.read(), daemon=True).start()
    return proc, host, int(port)


def metric(body, name):
    m = re.search(rf"^{name} (\S+)$", body, re.M)
    return float(m.group(1)) if m else None


def main():
    scrapes = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    env = harness_env()
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    binary = os.path.join(ROOT, "target/release/authprobe")
    url = f"http://127.0.0.1:{env['AP_HTTP_PORT']}/health"
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "probes.toml")
        with open(config, "w") as f:
            f.write("[defaults]\nconcurrency = 200\n\n")
            for i in range(200):
                f.write(f'[[probe]]\nname = "p{i:03}"\nkind = "http"\nurl = "{url}"\n\n')
        proc, host, port = start_serve(binary, config)
        try:
            # 1. Overhead per scrape, over one kept-alive connection.
            conn = http.client.HTTPConnection(host, port, timeout=30)
            overheads, walls = [], []
            for i in range(scrapes + 20):
                t0 = time.perf_counter()
                conn.request("GET", "/probe?target=p000")
                body = conn.getresponse().read().decode()
                wall = time.perf_counter() - t0
                if i < 20:
                    continue  # warm-up
                walls.append(wall)
                overheads.append(wall - metric(body, "probe_duration_seconds"))
            conn.close()
            overhead_ms = statistics.median(overheads) * 1000
            wall_ms = statistics.median(walls) * 1000

            # 2. 200 different probes scraped at once.
            results = [None] * 200
            barrier = threading.Barrier(200)

            def scrape(i):
                c = http.client.HTTPConnection(host, port, timeout=15)
                barrier.wait()
                t0 = time.perf_counter()
                try:
                    c.request("GET", f"/probe?target=p{i:03}", headers={"X-Prometheus-Scrape-Timeout-Seconds": "10"})
                    r = c.getresponse()
                    body = r.read().decode()
                    ok = r.status == 200 and metric(body, "probe_success") == 1.0
                    results[i] = ("ok" if ok else "failed", time.perf_counter() - t0)
                except Exception:  # a timeout or a refused connection
                    results[i] = ("timeout", time.perf_counter() - t0)
                finally:
                    c.close()

            threads = [threading.Thread(target=scrape, args=(i,)) for i in range(200)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            total = time.perf_counter() - t0
            ok = sum(1 for r in results if r and r[0] == "ok")
            failed = sum(1 for r in results if r and r[0] == "failed")
            timeouts = sum(1 for r in results if not r or r[0] == "timeout")
            slowest = max(r[1] for r in results if r) * 1000
        finally:
            proc.terminate()
            proc.wait()

        # 3. A tunnelled probe: the first scrape opens the tunnel, the others keep it. Each
        # round starts a new serve, so that every round has a first scrape.
        tunnel_config = os.path.join(tmp, "tunnel.toml")
        with open(tunnel_config, "w") as f:
            f.write(
                f'[[tunnel]]\nname = "bastion"\nhost = "127.0.0.1"\nport = {env["AP_BASTION_PORT"]}\n'
                f'user = "{env["AP_BASTION_USER"]}"\nauth = {{ type = "key", private_key = "{env["AP_BASTION_DIR"]}/jump_ed25519" }}\n'
                f'host_key = "{env["AP_BASTION_HOST_KEY"]}"\n\n'
                f'[[probe]]\nname = "db"\nkind = "postgres"\nvia = "bastion"\nhost = "localhost"\nport = {env["AP_INNER_PG_PORT"]}\n'
                f'user = "{env["AP_PG_USER"]}"\npassword = "{env["AP_PG_PASSWORD"]}"\ndatabase = "{env["AP_PG_DATABASE"]}"\n'
                f'tls = {{ mode = "verify-full", ca = "{env["AP_CA"]}" }}\n'
            )
        bastion_log = os.path.join(os.path.dirname(env["AP_CERTS"]), "logs", "bastion.log")
        logins_before = open(bastion_log).read().count("Accepted publickey")
        firsts, kept, rounds, per_round = [], [], 5, 20
        for _ in range(rounds):
            proc, host, port = start_serve(binary, tunnel_config)
            try:
                conn = http.client.HTTPConnection(host, port, timeout=30)
                for i in range(per_round):
                    t0 = time.perf_counter()
                    conn.request("GET", "/probe?target=db")
                    body = conn.getresponse().read().decode()
                    wall = time.perf_counter() - t0
                    if metric(body, "probe_success") != 1.0:
                        sys.exit(f"the tunnelled probe failed:\n{body}")
                    (firsts if i == 0 else kept).append(wall)
                conn.close()
            finally:
                proc.terminate()
                proc.wait()
        tunnel_logins = open(bastion_log).read().count("Accepted publickey") - logins_before
        first_ms = statistics.median(firsts) * 1000
        kept_ms = statistics.median(kept) * 1000

    print()
    print(f"{'figure':<48} {'value':>14} {'goal':>10}")
    print(f"{'scrape overhead beyond the probe (median)':<48} {overhead_ms:>11.3f} ms {'< 1 ms':>10}")
    print(f"{'  scrape wall time (median, for scale)':<48} {wall_ms:>11.3f} ms {'':>10}")
    print(f"{'200 concurrent scrapes of 200 probes: answered':<48} {ok:>14} {'200':>10}")
    print(f"{'  failed / timed out':<48} {f'{failed} / {timeouts}':>14} {'0 / 0':>10}")
    print(f"{'  slowest answer':<48} {slowest:>11.1f} ms {'< 10 s':>10}")
    print(f"{'  all 200 answered within':<48} {total * 1000:>11.1f} ms {'':>10}")
    print(f"{'tunnelled probe, scrape opening the tunnel':<48} {first_ms:>11.1f} ms {'':>10}")
    print(f"{'  scrape reusing the kept tunnel (median)':<48} {kept_ms:>11.1f} ms {'faster':>10}")
    print(f"{'  kept / opening':<48} {kept_ms / first_ms:>14.2f} {'< 1':>10}")
    print(f"{f'  bastion logins for {rounds}x{per_round} scrapes':<48} {tunnel_logins:>14} {rounds:>10}")
    print()
    print(f"Overhead: median over {scrapes} scrapes of (GET /probe wall time − probe_duration_seconds),")
    print("HTTP parsing, routing, rendering and the client's own time included. Release build,")
    print(f"{os.cpu_count()} cores, probes against the harness's nginx on loopback.")


if __name__ == "__main__":
    main()
