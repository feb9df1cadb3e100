"""Config dataclasses: ``--a.b=value`` overrides and plain-dict round trips for checkpoints."""
from __future__ import annotations

import ast
import dataclasses
import json
import typing
from typing import Any


def _convert(text: str, current: Any, field_type: Any, where: str) -> Any:
    """Parse ``text`` as the type of the field it replaces."""
    if isinstance(current, bool) or field_type in (bool, "bool"):
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{where}: expected true/false, got '{text}'")
    if text.lower() in ("none", "null") and (current is None or "None" in str(field_type) or "Optional" in str(field_type)):
        return None
    try:
        if isinstance(current, int) or field_type in (int, "int"):
            return int(text)
        if isinstance(current, float) or field_type in (float, "float"):
            return float(text)
        if isinstance(current, (list, tuple)):
            items = json.loads(text) if text.startswith("[") else [s for s in text.split(",") if s]
            if current:
                items = [type(current[0])(v) for v in items]
            return type(current)(items)
    except ValueError:
        kind = type(current).__name__ if current is not None else str(field_type)
        raise ValueError(f"{where}: expected a value of type {kind}, got '{text}'") from None
    return text


def apply_overrides(cfg, overrides: list[str]):
    """Apply ``["a.b=value", ...]`` (leading ``--`` optional) to nested dataclass ``cfg`` in place.

    Unknown keys are an error naming the key and the valid choices.
    """
    for item in overrides:
        key, sep, text = item.removeprefix("--").partition("=")
        if not sep:
            raise ValueError(f"override '{item}' must look like --a.b=value")
        obj, parts = cfg, key.split(".")
        for i, name in enumerate(parts):
            fields = {f.name: f for f in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else {}
            if name not in fields:
                where = ".".join(parts[:i]) or "config"
                raise ValueError(f"unknown config key '{key}': {where} has {sorted(fields)}")
            if i == len(parts) - 1:
                hints = typing.get_type_hints(type(obj))
                value = _convert(text, getattr(obj, name), hints.get(name, fields[name].type), f"--{key}")
                setattr(obj, name, value)
            else:
                obj = getattr(obj, name)
    return cfg


def parse_options(text: str) -> dict[str, Any]:
    """``"a=1,b=false,c=(1, 2)"`` -> ``{"a": 1, "b": False, "c": (1, 2)}`` (Python literals; bare words are
    strings, ``true`` / ``false`` booleans): config fields given as one command-line value."""
    out = {}
    for item in filter(None, (t.strip() for t in _split_top_level(text))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"option '{item}' must look like name=value")
        low = value.strip().lower()
        if low in ("true", "false"):
            out[key.strip()] = low == "true"
            continue
        try:
            out[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            out[key.strip()] = value.strip()
    return out


def _split_top_level(text: str) -> list[str]:
    """Split at commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return parts + [text[start:]]


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(cls, data: dict):
    """Rebuild dataclass ``cls`` (with nested dataclass fields) from :func:`to_dict` output."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    for name, value in data.items():
        t = hints.get(name)
        if dataclasses.is_dataclass(t) and isinstance(value, dict):
            value = from_dict(t, value)
        elif isinstance(value, list) and (t is tuple or typing.get_origin(t) is tuple):
            item = (typing.get_args(t) or (None,))[0]
            value = tuple(from_dict(item, v) if dataclasses.is_dataclass(item) and isinstance(v, dict) else v
                          for v in value)
        kwargs[name] = value
    return cls(**kwargs)
