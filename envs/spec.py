"""Scenario specifications: the default TOML, user overrides, and the checks on their shape.

A scenario is written as a nested dict (the shape of ``envs/data/default.toml``). A user TOML file
overrides any subset of it; :func:`merge_spec` applies the override and rejects unknown keys and wrong
types with a ``ValueError`` that names the key path, the value and what was expected. Value checks
(ranges, NaN, cross references) happen when the merged spec is built into a :class:`~envs.Scenario`.
"""

from __future__ import annotations

import copy
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

Spec = dict[str, Any]

# Tables whose keys are user-chosen names (each entry a table with the fields of the default entries).
NAMED_TABLES = ("service_nodes", "models", "workload_classes")
# Fields a new named entry may leave out, with the value it then takes (added after the first release).
OPTIONAL_FIELDS: dict[str, dict[str, Any]] = {"models": {"warm_regions": []}}
# Tables whose keys are region names and whose fields are those of [region_defaults].
REGION_OVERRIDES = "region_overrides"


def data_dir() -> Path:
    """The folder of packaged data (``envs/data``)."""
    return Path(str(resources.files("envs") / "data"))


# The registry of named scenarios: name -> packaged TOML file. :meth:`envs.Scenario.load` (and so every
# ``--scenario`` option and ``scenario =`` setting) accepts these names: "default", the base every TOML
# overrides, and each benchmark task of ``envs/data/tasks`` (see :mod:`envs.tasks`), named by its file.
NAMED_SCENARIOS: dict[str, Path] = {
    "default": data_dir() / "default.toml",
    **{path.stem: path for path in sorted((data_dir() / "tasks").glob("*.toml"))},
}


def default_spec() -> Spec:
    """The default scenario as a nested dict, read from the packaged ``default.toml``."""
    with open(data_dir() / "default.toml", "rb") as f:
        spec = tomllib.load(f)
    spec.setdefault(REGION_OVERRIDES, {})
    return spec


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """The tables of a user's TOML file; ``what`` names it in errors (a missing file, invalid TOML)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} {str(path)!r} does not exist (expected a TOML file)")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{what} {str(path)!r} is not valid TOML: {exc}") from exc


def load_toml(path: str | Path) -> Spec:
    """Read a user TOML file; data paths in it are resolved relative to its folder."""
    path = Path(path)
    spec = read_toml(path, "scenario file")
    spec.pop("benchmark", None)  # a task file's benchmark table (splits, episodes) is read by envs.tasks
    if "data" in spec and isinstance(spec["data"], dict):
        spec["data"] = {k: _resolve(v, path.parent) for k, v in spec["data"].items()}
    return spec


def _resolve(value: Any, base: Path) -> Any:
    """Make a relative data path absolute against ``base`` when the file exists there."""
    if isinstance(value, str) and not Path(value).is_absolute() and (base / value).is_file():
        return str((base / value).resolve())
    return value


def _type_name(value: Any) -> str:
    return type(value).__name__


def _check_type(path: str, value: Any, like: Any) -> None:
    """Reject ``value`` unless it has the type of the default ``like`` (an int is a valid float)."""
    if isinstance(like, bool) or isinstance(value, bool):
        ok = isinstance(value, bool) and isinstance(like, bool)
    elif isinstance(like, float):
        ok = isinstance(value, int | float)
    elif isinstance(like, int):
        ok = isinstance(value, int)
    elif isinstance(like, list):
        ok = isinstance(value, list)
        if ok and like and value:
            for j, item in enumerate(value):
                _check_type(f"{path}[{j}]", item, like[0])
    else:
        ok = isinstance(value, type(like))
    if not ok:
        raise ValueError(
            f"{path} = {value!r}: expected {_type_name(like)} (like the default {like!r}), got {_type_name(value)}"
        )


def _merge_table(base: Spec, override: Spec, path: str, schema: Spec | None = None) -> Spec:
    """Merge ``override`` into a copy of ``base``; ``schema`` gives the allowed keys when base lacks them."""
    schema = base if schema is None else schema
    out = copy.deepcopy(base)
    for key, value in override.items():
        where = f"{path}.{key}" if path else key
        if key not in schema:
            allowed = ", ".join(sorted(k for k in schema if not k.startswith("_")))
            raise ValueError(f"unknown key {where!r} (value {value!r}); expected one of: {allowed}")
        like = schema[key]
        if isinstance(like, dict) and not isinstance(value, dict):
            raise ValueError(f"{where} = {value!r}: expected a table")
        if isinstance(like, dict):
            out[key] = _merge_table(out.get(key, {}), value, where, like)
        else:
            _check_type(where, value, like)
            out[key] = value
    return out


def merge_spec(base: Spec, override: Spec) -> Spec:
    """Return ``base`` with ``override`` applied, checking keys and types against ``base``."""
    plain = {k: v for k, v in override.items() if k not in (*NAMED_TABLES, REGION_OVERRIDES)}
    out = _merge_table(base, plain, "")
    for key in NAMED_TABLES:
        value = override.get(key, {})
        if not isinstance(value, dict):
            raise ValueError(f"{key} = {value!r}: expected a table of named entries")
        template = next(iter(base[key].values()))
        for name, entry in value.items():
            where = f"{key}.{name}"
            if not isinstance(entry, dict):
                raise ValueError(f"{where} = {entry!r}: expected a table")
            if name in out[key]:
                out[key][name] = _merge_table(out[key][name], entry, where)
            else:
                entry = {**copy.deepcopy(OPTIONAL_FIELDS.get(key, {})), **entry}
                missing = sorted(set(template) - set(entry))
                if missing:
                    raise ValueError(f"new entry {where!r} lacks the fields {missing}; a new entry must give all")
                for field, like in template.items():  # nested tables (e.g. residency) must be whole too
                    if isinstance(like, dict) and isinstance(entry[field], dict) and set(like) - set(entry[field]):
                        raise ValueError(
                            f"new entry {where!r}: {field} lacks {sorted(set(like) - set(entry[field]))}; "
                            "a new entry must give all"
                        )
                out[key][name] = _merge_table({}, entry, where, template)
    value = override.get(REGION_OVERRIDES, {})
    if not isinstance(value, dict):
        raise ValueError(f"{REGION_OVERRIDES} = {value!r}: expected a table of region names")
    for name, entry in value.items():
        where = f"{REGION_OVERRIDES}.{name}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} = {entry!r}: expected a table")
        out[REGION_OVERRIDES][name] = _merge_table(
            out[REGION_OVERRIDES].get(name, {}), entry, where, base["region_defaults"]
        )
    return out
