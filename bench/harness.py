"""What the bench scripts share: the test servers' endpoints and credentials."""

import os


def harness_env():
    """The harness's env file (scripts/servers.sh env) as a dict."""
    state = os.environ.get("AUTHPROBE_STATE", "/tmp/authprobe-servers")
    env = {}
    with open(os.path.join(state, "servers.env")) as f:
        for line in f:
            if "=" in line:
                k, v = line.strip().split("=", 1)
                env[k] = v.strip("'")  # SAS tokens are single-quoted for shells
    return env
