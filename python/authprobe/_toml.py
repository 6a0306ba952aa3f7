"""Probes given as dicts, written as probes.toml text for the binary's standard input.

Only what probes.toml holds: strings, integers, floats, booleans, lists and tables (written
inline). Strings are taken as written: `${` becomes `$${`, which the reader reads back as a
literal `${`, so a password that contains it is not mistaken for a reference.
"""

from __future__ import annotations

import math
from typing import Any, List, Mapping, Optional, Sequence


def _string(value: str) -> str:
    out = ['"']
    for ch in value.replace("${", "$${"):
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _key(name: Any) -> str:
    if not isinstance(name, str):
        raise TypeError(f"keys must be strings, not {type(name).__name__}: {name!r}")
    bare = name and all(c.isascii() and (c.isalnum() or c in "-_") for c in name)
    return name if bare else _string(name)


def _value(value: Any, where: str) -> str:
    # bool before int: True is an int in Python.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError(f"{where}: {value} has no TOML form")
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Mapping):
        items = ", ".join(f"{_key(k)} = {_value(v, f'{where}.{k}')}" for k, v in value.items() if v is not None)
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v, f"{where}[{i}]") for i, v in enumerate(value)) + "]"
    raise TypeError(f"{where}: {type(value).__name__} is not a probes.toml value")


def _table(header: str, table: Mapping[str, Any], where: str) -> List[str]:
    lines = [header]
    for key, value in table.items():
        if value is not None:
            lines.append(f"{_key(key)} = {_value(value, f'{where}.{key}')}")
    lines.append("")
    return lines


def probes_toml(
    probes: Optional[Sequence[Mapping[str, Any]]],
    defaults: Optional[Mapping[str, Any]] = None,
    tunnels: Optional[Sequence[Mapping[str, Any]]] = None,
) -> str:
    """The probes.toml text for these tables (keys with the value None are left out)."""
    lines: List[str] = []
    if defaults:
        lines += _table("[defaults]", defaults, "defaults")
    for i, tunnel in enumerate(tunnels or []):
        lines += _table("[[tunnel]]", tunnel, f"tunnels[{i}]")
    for i, probe in enumerate(probes or []):
        if not isinstance(probe, Mapping):
            raise TypeError(f"probes[{i}] must be a dict, not {type(probe).__name__}")
        lines += _table("[[probe]]", probe, f"probes[{i}]")
    return "\n".join(lines)
