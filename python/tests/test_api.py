"""The Python API against the harness's servers (run by tests/python_api.rs, in a fresh
venv with the wheel installed, the harness's AP_* variables in the environment)."""

import json
import os
import socket
import sys
import threading
import time

import pytest

import authprobe
from authprobe._document import probes_document

ENV = os.environ


def pg_url(user="app_user"):
    return f"postgres://{user}@localhost:{ENV['AP_PG_PORT']}/appdb"


def test_check_passes_and_reports_the_certificate():
    r = authprobe.check(pg_url(), password=ENV["AP_PG_PASSWORD"], ca=ENV["AP_CA"], timeout=10)
    assert r.passed and r.status == "pass" and r.stage is None
    assert r.tls["subject"].startswith("CN=localhost")
    assert r.report["kind"] == "postgres"


def test_a_wrong_password_says_stage_class_and_hint():
    r = authprobe.check(pg_url(), password="not-the-password", ca=ENV["AP_CA"])
    assert not r.passed
    assert (r.stage, r.error_class) == ("auth", "auth_rejected")
    assert r.hint and "not-the-password" not in str(r.report)


def test_require_raises_probe_failed_with_the_whole_story():
    with pytest.raises(authprobe.ProbeFailed) as failed:
        authprobe.require(pg_url(), password="not-the-password", ca=ENV["AP_CA"])
    text = str(failed.value)
    assert text.startswith("auth: auth_rejected \u2014 ") and "(hint: " in text
    assert failed.value.result.error_class == "auth_rejected"


def test_a_password_written_in_the_url_never_becomes_an_argument():
    url = f"postgres://app_user:{ENV['AP_PG_PASSWORD']}@localhost:{ENV['AP_PG_PORT']}/appdb"
    assert authprobe.check(url, ca=ENV["AP_CA"]).passed


def test_dict_probes_use_the_config_reader_and_its_errors():
    probe = {
        "name": "api",
        "kind": "http",
        "url": f"https://localhost:{ENV['AP_HTTPS_PORT']}/bearer",
        "auth": {"type": "bearer", "token": ENV["AP_BEARER_TOKEN"]},
        "tls": {"ca": ENV["AP_CA"]},
    }
    report = authprobe.run(probes=[probe])
    assert report.passed and report["api"].status == "pass"
    typo = dict(probe, urll=probe["url"])
    del typo["url"]
    with pytest.raises(authprobe.UsageError) as bad:
        authprobe.run(probes=[typo])
    assert "unknown key `urll` (did you mean `url`?)" in str(bad.value)
    assert "<stdin>:" in str(bad.value)
    assert ENV["AP_BEARER_TOKEN"] not in str(bad.value)


def test_form_values_are_strings_and_still_work():
    # As a connector's configuration gives them: a port and a switch as strings.
    probe = {
        "name": "db",
        "kind": "postgres",
        "host": "localhost",
        "port": ENV["AP_PG_PORT"],
        "database": "appdb",
        "user": "app_user",
        "password": ENV["AP_PG_PASSWORD"],
        "allow_unverified_password": "false",
        "tls": {"ca": ENV["AP_CA"]},
    }
    assert authprobe.run(probes=[probe]).passed


def test_a_config_file_runs_with_only():
    report = authprobe.run(ENV["AUTHPROBE_EXAMPLE_CONFIG"], only=["db-orders"])
    assert [r.name for r in report.results] == ["db-orders"] and report.passed


def test_strings_are_literal_in_dict_probes():
    text = probes_document([{"name": "x", "kind": "http", "url": "http://h/", "headers": {"X-A": 'a"${B}\\c\n'}}])
    parsed = json.loads(text)
    assert parsed["probe"][0]["headers"]["X-A"] == 'a"$${B}\\c\n'
    assert "${B}" not in text.replace("$${B}", "")
    with pytest.raises(TypeError):
        probes_document([{"name": "x", "port": object()}])
    with pytest.raises(ValueError):
        probes_document([{"name": "x", "timeout": float("nan")}])


def _hanging_server():
    """A listener that accepts and never answers: the child then waits its full timeout."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held = []

    def accept():
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return server, held


def _children(binary):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            continue
        if ppid == os.getpid() and os.path.realpath(exe) == os.path.realpath(binary):
            found.append(int(pid))
    return found


def test_secrets_are_never_in_the_childs_arguments():
    server, _ = _hanging_server()
    port = server.getsockname()[1]
    secret = "py-argv-canary-7f3e9a"
    seen = []

    def watch():
        binary = authprobe.find_binary()
        deadline = time.time() + 5
        while time.time() < deadline and not seen:
            for pid in _children(binary):
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        seen.append(f.read())
                    with open(f"/proc/{pid}/environ", "rb") as f:
                        seen.append(b"environ has it" if secret.encode() in f.read() else b"")
                except OSError:
                    pass
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    r = authprobe.check(
        f"postgres://u:{secret}@127.0.0.1:{port}/db",
        headers={"X-Token": secret},
        bearer_token=secret,
        timeout=2,
    )
    watcher.join()
    server.close()
    assert seen, "the child was seen running"
    assert all(secret.encode() not in argv for argv in seen if argv != b"environ has it"), seen
    assert b"environ has it" in seen, "the secret went through the environment"
    assert r.error_class == "timeout"


def test_the_timeout_kills_the_child(monkeypatch):
    server, _ = _hanging_server()
    port = server.getsockname()[1]
    # Python's deadline before the binary's own: the child must be killed.
    monkeypatch.setattr(authprobe, "_GRACE_SECONDS", -1.5)
    started = time.time()
    with pytest.raises(authprobe.Timeout):
        authprobe.check(f"postgres://u@127.0.0.1:{port}/db", password="x", timeout=3)
    assert time.time() - started < 2.5
    time.sleep(0.2)
    assert _children(authprobe.find_binary()) == []
    server.close()


def test_usage_errors_missing_binaries_and_interruptions_are_distinct(tmp_path, monkeypatch):
    with pytest.raises(authprobe.UsageError):
        authprobe.check("gopher://example.test/")
    monkeypatch.setenv("AUTHPROBE_BIN", str(tmp_path / "nothing-here"))
    with pytest.raises(authprobe.BinaryNotFound):
        authprobe.check(pg_url())
    interrupted = tmp_path / "interrupted"
    interrupted.write_text("#!/bin/sh\nkill -INT $$\n")
    interrupted.chmod(0o755)
    monkeypatch.setenv("AUTHPROBE_BIN", str(interrupted))
    with pytest.raises(authprobe.Interrupted):
        authprobe.check(pg_url())


def test_python_dash_m_runs_the_cli():
    import subprocess

    out = subprocess.run([sys.executable, "-m", "authprobe", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("authprobe ")


def test_airbyte_check_answers_with_a_connection_status():
    from authprobe.airbyte import check_connection, connection_status

    def pg(config):
        return {"name": "warehouse", "kind": "postgres", "host": "localhost", "port": config["port"],
                "database": "appdb", "user": "app_user", "password": config["password"],
                "tls": {"ca": ENV["AP_CA"]}}

    good = {"port": ENV["AP_PG_PORT"], "password": ENV["AP_PG_PASSWORD"]}
    assert check_connection(pg, good) == (True, None)
    assert connection_status(pg, good) == {"type": "CONNECTION_STATUS", "connectionStatus": {"status": "SUCCEEDED"}}
    bad = dict(good, password="not-the-password")
    passed, message = check_connection(pg, bad)
    assert not passed and message.startswith("warehouse: auth: auth_rejected \u2014 ") and "(hint: " in message
    status = connection_status(pg, bad)
    assert status["connectionStatus"]["status"] == "FAILED"
    assert "not-the-password" not in str(status)
    # A config the reader refuses is a failed check that says why, not an exception.
    passed, message = check_connection(lambda c: dict(pg(c), prot=1), good)
    assert not passed and "prot" in message
