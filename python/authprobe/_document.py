"""Probes given as dicts, handed to the binary as the JSON form of probes.toml.

The binary reads JSON with the same reader and the same keys as probes.toml (`null` is a
key not given; errors name the probe and the key). Only what probes.toml holds is taken:
strings, integers, finite floats, booleans, lists and tables with string keys. Strings
are taken as written: `${` becomes `$${`, which the reader reads back as a literal `${`,
so a password that contains it is not mistaken for a reference.
"""

from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence


def _value(value: Any, where: str) -> Any:
    # bool before int: True is an int in Python.
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"{where}: {value} does not fit a 64-bit integer")
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError(f"{where}: {value} has no probes.toml form")
        return value
    if isinstance(value, str):
        return value.replace("${", "$${")
    if isinstance(value, Mapping):
        return _table(value, where)
    if isinstance(value, (list, tuple)):
        return [_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"{where}: {type(value).__name__} is not a probes.toml value")


def _table(table: Mapping[Any, Any], where: str) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, value in table.items():
        if not isinstance(key, str):
            raise TypeError(f"{where}: keys must be strings, not {type(key).__name__}: {key!r}")
        if value is not None:
            out[key] = _value(value, f"{where}.{key}")
    return out


def probes_document(
    probes: Optional[Sequence[Mapping[str, Any]]],
    defaults: Optional[Mapping[str, Any]] = None,
    tunnels: Optional[Sequence[Mapping[str, Any]]] = None,
) -> str:
    """The JSON document for these tables (keys with the value None are left out)."""
    document: Dict[str, Any] = {}
    if defaults:
        document["defaults"] = _table(defaults, "defaults")
    if tunnels:
        document["tunnel"] = [_table(t, f"tunnels[{i}]") for i, t in enumerate(tunnels)]
    tables: List[Dict[str, Any]] = []
    for i, probe in enumerate(probes or []):
        if not isinstance(probe, Mapping):
            raise TypeError(f"probes[{i}] must be a dict, not {type(probe).__name__}")
        tables.append(_table(probe, f"probes[{i}]"))
    document["probe"] = tables
    return json.dumps(document, allow_nan=False)
