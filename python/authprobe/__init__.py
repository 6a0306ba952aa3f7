"""authprobe from Python: do these credentials work against these systems, and if not, why?

    import authprobe
    r = authprobe.check("postgres://replicator@db.example.com:5432/app", password=secret, ca="ca.pem")
    r.passed, r.status, r.stage, r.error_class, r.message, r.hint, r.tls, r.report
    authprobe.require(...)                      # raises authprobe.ProbeFailed
    authprobe.run("probes.toml")                # or run(probes=[{"name": ..., "kind": ..., ...}])

The package runs the `authprobe` binary installed beside it (the wheel ships it, as ruff's
and uv's do). Secrets reach it only through its environment or its standard input, never
its arguments, which every user of the machine can read in `ps`. Standard library only.
"""

from __future__ import annotations

import os
import sys

# Importing this package must stay cheap (a connector imports it on every run): `typing`,
# `dataclasses`, `json`, `subprocess` and `signal` alone cost ~40 ms, so types are for the
# checker only and the rest is imported where it is used.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

    __all__ = [
    "AuthprobeError",
    "BinaryNotFound",
    "Interrupted",
    "ProbeFailed",
    "Report",
    "Result",
    "Timeout",
    "UsageError",
    "check",
    "find_binary",
    "require",
    "run",
]

# Where a project keeps its own copy of the binary (a Connector SDK package has no pip run
# that would install it).
VENDOR_DIR = "authprobe-bin"

# How long past its own timeout the binary gets to write its report before it is killed.
_GRACE_SECONDS = 5.0


class AuthprobeError(Exception):
    """Anything that kept authprobe from giving an answer."""


class BinaryNotFound(AuthprobeError):
    """The authprobe binary is not installed where this package looks."""


class UsageError(AuthprobeError):
    """authprobe refused its input (exit 2): a config error, a bad URL or option. Nothing ran."""


class Interrupted(AuthprobeError):
    """authprobe was interrupted (Ctrl-C, SIGTERM) before it finished."""


class Timeout(AuthprobeError):
    """authprobe did not finish in time; it was killed."""


class Result:
    """One probe's outcome. `report` is the probe's JSON report as a dict (schemas/report.schema.json)."""

    __slots__ = ("name", "status", "stage", "error_class", "message", "hint", "tls", "report")

    def __init__(
        self,
        name: str,
        status: str,
        stage: Optional[str],
        error_class: Optional[str],
        message: Optional[str],
        hint: Optional[str],
        tls: Optional[Dict[str, Any]],
        report: Dict[str, Any],
    ):
        self.name = name
        self.status = status
        self.stage = stage
        self.error_class = error_class
        self.message = message
        self.hint = hint
        self.tls = tls
        self.report = report

    def __repr__(self) -> str:
        return (
            f"Result(name={self.name!r}, status={self.status!r}, stage={self.stage!r}, "
            f"error_class={self.error_class!r}, message={self.message!r}, hint={self.hint!r})"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Result) and self.report == other.report

    @property
    def passed(self) -> bool:
        """Passed, or passed with a warning (an expiring certificate)."""
        return self.status in ("pass", "warn")

    def __str__(self) -> str:
        if self.passed:
            return f"{self.name}: {self.status}"
        return f"{self.stage}: {self.error_class} \u2014 {self.message} (hint: {self.hint})"

    @classmethod
    def _from_report(cls, probe: Dict[str, Any]) -> "Result":
        error = probe.get("error") or {}
        return cls(
            name=probe["name"],
            status=probe["status"],
            stage=error.get("stage"),
            error_class=error.get("class"),
            message=error.get("message"),
            hint=error.get("hint"),
            tls=probe.get("tls"),
            report=probe,
        )


class Report:
    """A run's outcome: one `Result` per probe, in config order, and the whole JSON report."""

    __slots__ = ("results", "report")

    def __init__(self, results: List[Result], report: Dict[str, Any]):
        self.results = results
        self.report = report

    def __repr__(self) -> str:
        return f"Report(results={self.results!r})"

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> List[Result]:
        return [r for r in self.results if not r.passed]

    def __getitem__(self, name: str) -> Result:
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(name)


class ProbeFailed(AuthprobeError):
    """`require` found a probe that does not work; `result` says where and why."""

    def __init__(self, result: Result):
        super().__init__(str(result))
        self.result = result


def find_binary() -> str:
    """The authprobe binary: $AUTHPROBE_BIN, else the one installed with this package (the
    environment's scripts directory, or the user scheme's), else the first on PATH."""
    explicit = os.environ.get("AUTHPROBE_BIN")
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return explicit
        raise BinaryNotFound(f"AUTHPROBE_BIN={explicit} is not an executable file")
    import sysconfig

    name = "authprobe.exe" if sys.platform == "win32" else "authprobe"
    places = [sysconfig.get_path("scripts")]
    user_scheme = f"{os.name}_user" if sys.version_info < (3, 10) else sysconfig.get_preferred_scheme("user")
    try:
        places.append(sysconfig.get_path("scripts", scheme=user_scheme))
    except KeyError:
        pass
    for place in places:
        candidate = os.path.join(place, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    for place in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(place, name)
        if place and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    # A copy shipped inside a project (`authprobe.fivetran.vendor_binary`): in the working
    # directory or a directory Python imports from (the connector's own).
    for place in [os.getcwd(), *sys.path]:
        candidate = os.path.join(place or os.getcwd(), VENDOR_DIR, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise BinaryNotFound(
        "the authprobe binary is not installed: `pip install authprobe` ships it, or set AUTHPROBE_BIN"
    )


def _execute(args: List[str], env: Mapping[str, str], stdin: Optional[str], limit: Optional[float]) -> Dict[str, Any]:
    """Runs the binary; the JSON report, or the exception that says why there is none."""
    import json
    import signal
    import subprocess

    binary = find_binary()
    try:
        done = subprocess.run(
            [binary, *args],
            input=stdin if stdin is not None else "",
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=limit,
        )
    except subprocess.TimeoutExpired as err:
        # subprocess.run has killed the child.
        raise Timeout(f"authprobe did not finish within {err.timeout:g} s and was stopped") from None
    if done.returncode == 2:
        raise UsageError(done.stderr.strip() or "authprobe refused its input (exit 2)")
    if done.returncode == 130 or done.returncode in (-signal.SIGINT, -signal.SIGTERM):
        raise Interrupted("authprobe was interrupted before it finished")
    if done.returncode not in (0, 1):
        raise AuthprobeError(f"authprobe exited with {done.returncode}: {done.stderr.strip()}")
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise AuthprobeError(f"authprobe wrote no JSON report: {done.stderr.strip()}") from None


def _seconds(value: Union[int, float, str, None]) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return f"{int(value * 1000)}ms"


def _limit(timeout: Union[int, float, str, None], wait: Union[int, float, str, None]) -> Optional[float]:
    """When to kill the child: its own budget and a grace, or never when it has none."""
    def as_float(v: Union[int, float, str, None]) -> Optional[float]:
        if v is None:
            return None
        if isinstance(v, (int, float)):
            return float(v)
        units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
        for unit in ("ms", "s", "m", "h"):
            if v.endswith(unit) and v[: -len(unit)].replace(".", "", 1).isdigit():
                return float(v[: -len(unit)]) * units[unit]
        return None
    budget = as_float(wait) if wait is not None else as_float(timeout)
    return None if budget is None else budget + _GRACE_SECONDS


def check(
    url: str,
    *,
    password: Optional[str] = None,
    bearer_token: Optional[str] = None,
    basic_user: Optional[str] = None,
    headers: Optional[Mapping[str, str]] = None,
    ca: Optional[PathLike] = None,
    client_cert: Optional[PathLike] = None,
    client_key: Optional[PathLike] = None,
    server_name: Optional[str] = None,
    pin_sha256: Union[str, Sequence[str], None] = None,
    allow_unverified_password: bool = False,
    identity: Optional[PathLike] = None,
    passphrase: Optional[str] = None,
    host_key: Optional[str] = None,
    known_hosts: Optional[PathLike] = None,
    query: Optional[str] = None,
    expect_status: Union[int, str, Sequence[Union[int, str]], None] = None,
    expect_body: Optional[str] = None,
    timeout: Union[int, float, str] = 10,
    wait: Union[int, float, str, None] = None,
    name: str = "check",
    env: Optional[Mapping[str, str]] = None,
) -> Result:
    """Probes one URL, as `authprobe check URL`: http(s)://, postgres://, mysql://, mssql://,
    s3://, sftp://. Secrets (`password`, `bearer_token`, `passphrase`, header values, a
    password written in the URL) go to the binary through its environment.

    `timeout` and `wait` are seconds or duration strings ("500ms", "2m"). Returns the probe's
    `Result`; raises `UsageError` for a bad URL or option, `Timeout`, `Interrupted` and
    `BinaryNotFound`.
    """
    from urllib.parse import quote, unquote, urlsplit, urlunsplit

    child_env = dict(os.environ if env is None else env)
    args = ["check"]
    parts = urlsplit(url)
    if parts.password is not None:
        # A password in the URL would be an argument: it travels in the environment instead.
        password = password if password is not None else unquote(parts.password)
        user = quote(unquote(parts.username or ""), safe="")
        host = parts.netloc.rsplit("@", 1)[1]
        url = urlunsplit((parts.scheme, f"{user}@{host}" if user else host, parts.path, parts.query, parts.fragment))
    args.append(url)

    def secret(flag: str, var: str, value: Optional[str]) -> None:
        if value is not None:
            child_env[var] = value
            args.extend([flag, var])

    secret("--password-env", "AUTHPROBE_PY_PASSWORD", password)
    secret("--bearer-env", "AUTHPROBE_PY_BEARER", bearer_token)
    secret("--passphrase-env", "AUTHPROBE_PY_PASSPHRASE", passphrase)
    for i, (header, value) in enumerate((headers or {}).items()):
        var = f"AUTHPROBE_PY_HEADER_{i}"
        child_env[var] = value
        args.extend(["-H", f"{header}: ${{{var}}}"])
    options = {
        "--basic-user": basic_user,
        "--ca": ca,
        "--client-cert": client_cert,
        "--client-key": client_key,
        "--server-name": server_name,
        "--identity": identity,
        "--host-key": host_key,
        "--known-hosts": known_hosts,
        "--query": query,
        "--expect-body": expect_body,
        "--name": name,
        "--timeout": _seconds(timeout),
        "--wait": _seconds(wait),
    }
    for flag, value in options.items():
        if value is not None:
            args.extend([flag, os.fspath(value) if isinstance(value, os.PathLike) else str(value)])
    for pin in [pin_sha256] if isinstance(pin_sha256, str) else list(pin_sha256 or []):
        args.extend(["--pin-sha256", pin])
    statuses = [expect_status] if isinstance(expect_status, (int, str)) else list(expect_status or [])
    for status in statuses:
        args.extend(["--expect-status", str(status)])
    if allow_unverified_password:
        args.append("--allow-unverified-password")
    args.extend(["--format", "json", "--quiet"])
    report = _execute(args, child_env, None, _limit(timeout, wait))
    return Result._from_report(report["probes"][0])


def require(url: str, **options: Any) -> Result:
    """As `check`, but raises `ProbeFailed` when the probe does not pass: the first line of a
    sync that must not start with credentials that do not work."""
    result = check(url, **options)
    if not result.passed:
        raise ProbeFailed(result)
    return result


def run(
    config: Optional[PathLike] = None,
    *,
    probes: Optional[Sequence[Mapping[str, Any]]] = None,
    defaults: Optional[Mapping[str, Any]] = None,
    tunnels: Optional[Sequence[Mapping[str, Any]]] = None,
    only: Sequence[str] = (),
    skip: Sequence[str] = (),
    timeout: Union[int, float, str, None] = None,
    wait: Union[int, float, str, None] = None,
    concurrency: Optional[int] = None,
    env: Optional[Mapping[str, str]] = None,
) -> Report:
    """Runs a probes file (`config`), or probes given as dicts with the keys of probes.toml
    (`probes`, and optionally `defaults` and `tunnels`). Dict probes reach the binary on its
    standard input, never in a file or an argument; their strings are taken as written (a
    `${...}` in them is not a reference: read the environment in Python instead). The same
    reader checks them: a typo'd key raises `UsageError` naming it."""
    if (config is None) == (probes is None):
        raise TypeError("give either a config file or probes")
    args = ["run", "-c", "-" if probes is not None else os.fspath(config)]  # type: ignore[arg-type]
    for pattern in only:
        args.extend(["--only", pattern])
    for pattern in skip:
        args.extend(["--skip", pattern])
    if timeout is not None:
        args.extend(["--timeout", _seconds(timeout) or ""])
    if wait is not None:
        args.extend(["--wait", _seconds(wait) or ""])
    if concurrency is not None:
        args.extend(["--concurrency", str(concurrency)])
    args.extend(["--format", "json", "--quiet"])
    from authprobe._document import probes_document

    text = probes_document(probes, defaults, tunnels) if probes is not None else None
    limit = None
    if wait is not None or timeout is not None:
        # Each probe has the timeout; the run as a whole is bounded only with --wait.
        limit = _limit(None, wait) if wait is not None else None
    report = _execute(args, dict(os.environ if env is None else env), text, limit)
    return Report(results=[Result._from_report(p) for p in report["probes"]], report=report)
