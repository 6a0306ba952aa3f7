"""authprobe in an Airbyte connector's `check`.

    from authprobe.airbyte import check_connection, connection_status

    def api(config):
        return {"name": "api", "kind": "http", "url": config["base_url"] + "/health",
                "auth": {"type": "bearer", "token": config["api_key"]}}

    class SourceExample(AbstractSource):               # airbyte-cdk
        def check_connection(self, logger, config):
            return check_connection(api, config)       # (True, None) or (False, "auth: auth_rejected — …")

    print(json.dumps(connection_status(api, config)))  # a connector without the CDK: the
                                                       # protocol's CONNECTION_STATUS message

`build(config)` returns a probe as a dict with the keys of probes.toml. The message names the
stage, class and hint, never a value: authprobe scrubs every secret it was given.
"""

from __future__ import annotations

import authprobe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Mapping, Optional, Tuple

    Build = Callable[[Mapping[str, Any]], Dict[str, Any]]


def _outcome(build: Build, config: Mapping[str, Any]) -> Tuple[bool, Optional[str]]:
    try:
        report = authprobe.run(probes=[dict(build(config))])
    except authprobe.AuthprobeError as err:
        return False, f"authprobe could not check the credentials: {err}"
    failed = report.failed
    if not failed:
        return True, None
    return False, "; ".join(f"{r.name}: {r}" for r in failed)


def check_connection(build: Build, config: Mapping[str, Any]) -> Tuple[bool, Optional[str]]:
    """For the CDK's `AbstractSource.check_connection`: `(True, None)` when the probe passes,
    else `(False, "stage: class — message (hint: …)")`, which Airbyte shows to the user."""
    return _outcome(build, config)


def connection_status(build: Build, config: Mapping[str, Any]) -> Dict[str, Any]:
    """The Airbyte protocol's answer to `check`: a `CONNECTION_STATUS` message (a dict; write it
    as one JSON line on standard output)."""
    passed, message = _outcome(build, config)
    status: Dict[str, Any] = {"status": "SUCCEEDED" if passed else "FAILED"}
    if message is not None:
        status["message"] = message
    return {"type": "CONNECTION_STATUS", "connectionStatus": status}
