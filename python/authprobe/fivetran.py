"""authprobe in a Fivetran Connector SDK connector: a setup test for the configuration
form, and the first line of `update()`.

    from authprobe.fivetran import setup_test, fail_fast

    def api_probe(configuration):
        return {"name": "api", "kind": "http", "url": configuration["base_url"] + "/health",
                "auth": {"type": "bearer", "token": configuration["api_key"]}}

    def configuration_form():
        return ConfigurationForm().add_test(label="API key works", func=setup_test(api_probe))

    def update(configuration, state):
        fail_fast(api_probe, configuration)      # stops the sync with stage, class and hint
        ...

`build(configuration)` returns a probe as a dict with the keys of probes.toml. The SDK's
configuration values are all strings: "true" and "5432" are accepted where a key wants a
boolean or a number. Nothing here logs a configuration value; authprobe's own messages are
scrubbed of every secret it was given.
"""

from __future__ import annotations

import os

import authprobe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Mapping, Optional

    Build = Callable[[Mapping[str, Any]], Dict[str, Any]]


def _probe(build: Build, configuration: Mapping[str, Any], timeout: Any) -> authprobe.Result:
    probe = dict(build(configuration))
    if timeout is not None:
        probe.setdefault("timeout", authprobe._seconds(timeout))
    report = authprobe.run(probes=[probe])
    return report.results[0]


def _name(build: Build) -> str:
    return getattr(build, "__name__", "probe")


def setup_test(build: Build, *, name: Optional[str] = None, timeout: Any = None) -> Callable[[Mapping[str, Any]], Any]:
    """A setup test for `ConfigurationForm.add_test(label=…, func=…)`: `Test.success()`, or
    `Test.failure(message)` with the stage, class, message and hint, which
    `fivetran configuration --test` shows. The function is named `authprobe_<build's name>`
    (the SDK identifies tests by name), or `name`."""

    def test(configuration: Mapping[str, Any]) -> Any:
        from fivetran_connector_sdk import Test

        try:
            result = _probe(build, configuration, timeout)
        except authprobe.AuthprobeError as err:
            return Test.failure(f"authprobe could not check {_name(build)}: {err}")
        if result.passed:
            return Test.success()
        return Test.failure(f"{result.name}: {result}")

    test.__name__ = name or f"authprobe_{_name(build)}"
    test.__qualname__ = test.__name__
    return test


def fail_fast(build: Build, configuration: Mapping[str, Any], *, timeout: Any = None) -> authprobe.Result:
    """The first line of `update()`: probes the credentials before any sync work, logs the
    outcome through the SDK's logger (INFO when it works, SEVERE when not, never a value),
    and raises `authprobe.ProbeFailed` with stage, class, message and hint, which stops
    `fivetran debug` (and a sync) with it."""
    from fivetran_connector_sdk import Logging as log

    result = _probe(build, configuration, timeout)
    if result.passed:
        log.info(f"authprobe: {result.name} works ({result.status})")
        return result
    log.severe(f"authprobe: {result.name} does not work: {result}")
    raise authprobe.ProbeFailed(result)


def vendor_binary(project_path: str = ".") -> str:
    """Copies the authprobe binary into the connector project (`authprobe-bin/authprobe`,
    executable), so that `fivetran package` and `fivetran deploy` ship it with the code —
    not under `lib/`, `include/` or `files/`, which packaging drops. The package finds it
    there at run time. Returns the copy's path."""
    import shutil
    import stat

    source = authprobe.find_binary()
    target_dir = os.path.join(project_path, authprobe.VENDOR_DIR)
    os.makedirs(target_dir, exist_ok=True)
    target = os.path.join(target_dir, os.path.basename(source))
    if os.path.abspath(source) != os.path.abspath(target):
        shutil.copyfile(source, target)
    mode = os.stat(target).st_mode
    os.chmod(target, mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    return target


if __name__ == "__main__":
    import sys

    if len(sys.argv) >= 2 and sys.argv[1] == "vendor":
        print(vendor_binary(sys.argv[2] if len(sys.argv) > 2 else "."))
    else:
        print("usage: python -m authprobe.fivetran vendor [PROJECT_PATH]", file=sys.stderr)
        sys.exit(2)
