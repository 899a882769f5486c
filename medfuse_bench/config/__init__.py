"""Configuration: load ``config.yaml``, validate it against the JSON schema, fill defaults, apply the scale.

The schema (``config.schema.yaml`` beside this file) is the one source of truth for keys, types, defaults and
their documentation; the Snakefile and the CLI both go through :func:`load_config` / :func:`resolve_config`.
"""

from __future__ import annotations

import copy
import difflib
import functools
import os
import re
from pathlib import Path
from typing import Any

import yaml

from medfuse_bench.errors import MedfuseError
from medfuse_bench.resources import YAML_LOADER

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")

#: Sizes and budgets per scale (config key ``scale``); a key set explicitly in config.yaml always wins.
SCALES: dict[str, dict[str, Any]] = {
    "smoke": {
        "synthetic": {"stays": 400, "image_size": 48},
        "etl": {"timestep_hours": 2.0},
        "images": {"resize": 32, "crop": 28},
        "train": {
            "max_epochs": 1,
            "patience": 1,
            "lr_draws": 1,
            "lr_min": 3.0e-4,
            "lr_max": 1.0e-3,
            "uni_modal_sweep": [0.0, 1.0],
            "num_threads": 1,
        },
    },
    "demo": {
        "synthetic": {"stays": 1400, "image_size": 64},
        "etl": {"timestep_hours": 2.0},
        "images": {"resize": 32, "crop": 28},
        "train": {
            "max_epochs": 4,
            "patience": 3,
            "lr_draws": 1,
            "lr_min": 3.0e-4,
            "lr_max": 1.0e-3,
            "uni_modal_sweep": [0.0, 0.5, 1.0],
            "num_threads": 1,
        },
    },
    "paper": {
        "synthetic": {"stays": 50000, "image_size": 512},
        "etl": {"timestep_hours": 1.0},
        "images": {"resize": 256, "crop": 224},
        "train": {
            "max_epochs": 50,
            "patience": 15,
            "lr_draws": 10,
            "lr_min": 1.0e-5,
            "lr_max": 1.0e-3,
            "uni_modal_sweep": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
            "num_threads": 4,
        },
    },
}


@functools.cache
def _schema() -> dict[str, Any]:
    with SCHEMA_PATH.open() as fh:
        return yaml.load(fh, Loader=YAML_LOADER)


def load_schema() -> dict[str, Any]:
    """The configuration schema (a fresh copy: callers may change it). Parsed once per process, since every
    subcommand's parser reads its defaults from it."""
    return copy.deepcopy(_schema())


def config_default(*keys: str, scale: str = "paper") -> Any:
    """Default of a config key for a command-line flag: the schema's default, or where the schema leaves a budget key
    null (filled from the scale when a config is resolved) the ``scale``'s value.

    >>> config_default("train", "batch_size"), config_default("train", "lr_max"), config_default("seed")
    (16, 0.001, 1002)
    """
    node: dict[str, Any] = {"properties": _schema()["properties"]}
    for key in keys:
        node = node["properties"][key]
    value = node.get("default")
    if value is None and len(keys) == 2:
        value = SCALES[scale].get(keys[0], {}).get(keys[1])
    return copy.deepcopy(value)


def _with_defaults(validator_class: type) -> type:
    """A validator that fills ``default`` values into missing keys while it validates."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):  # noqa: ANN001
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    from jsonschema import validators

    return validators.extend(validator_class, {"properties": set_defaults})


@functools.cache
def _validator_class() -> type:
    # jsonschema is imported here, not at module level: every subcommand imports this module, few validate.
    import jsonschema

    return _with_defaults(jsonschema.Draft202012Validator)


def _key_path(error: Any) -> str:  # a jsonschema.ValidationError
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _valid_keys(schema: dict[str, Any]) -> list[str]:
    """The keys a mapping of ``schema`` may hold: its properties and the names its patternProperties spell out
    (``^(a|b)$``)."""
    keys = list(schema.get("properties", {}))
    for pattern in schema.get("patternProperties", {}):
        spelled = re.fullmatch(r"\^\(?([\w|.-]+)\)?\$", pattern)
        if spelled:
            keys += spelled.group(1).split("|")
    return keys


def unknown_key_message(error: Any, source: str) -> str:  # error: a jsonschema ValidationError (additionalProperties)
    """One line naming the first unknown key with its full path and the closest valid key at that place."""
    schema, instance = error.schema, error.instance
    patterns = list(schema.get("patternProperties", {}))
    unknown = sorted(
        str(k) for k in instance
        if k not in schema.get("properties", {}) and not any(re.search(p, str(k)) for p in patterns)
    )
    prefix = ".".join(str(p) for p in error.absolute_path)
    valid = _valid_keys(schema)
    key = unknown[0] if unknown else "?"
    where = f"{prefix}.{key}" if prefix else key
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if close:
        hint = f"did you mean '{prefix + '.' if prefix else ''}{close[0]}'?"
    else:
        hint = f"valid keys {'in ' + repr(prefix) if prefix else 'at the top level'}: {', '.join(valid)}"
    more = f" ({len(unknown) - 1} more unknown key(s) there)" if len(unknown) > 1 else ""
    return f"{source}: unknown key '{where}'{more}; {hint}"


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _renamed_profile_message(value: Any, source: str) -> str:
    """One line for the size preset's old key ``profile``: the word is Snakemake's, for ``--profile`` (executor
    settings)."""
    shown = "null" if value is None else value
    return (f"{source}: config key 'profile' was renamed to 'scale'; write 'scale: {shown}' "
            f"(on Snakemake's command line: --config scale={shown})")


def validate_config(config: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """Validate ``config`` in place, filling defaults; raise :class:`MedfuseError` naming the bad key.

    The message is one line: an unknown key comes with the closest valid key (a misspelling is the usual cause).
    """
    if not isinstance(config, dict):
        raise MedfuseError(f"{source}: the configuration must be a mapping of keys, got {type(config).__name__}")
    if "profile" in config:
        raise MedfuseError(_renamed_profile_message(config["profile"], source))
    validator = _validator_class()(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        if err.validator == "additionalProperties":
            raise MedfuseError(unknown_key_message(err, source))
        raise MedfuseError(f"{source}: key '{_key_path(err)}': {_one_line(err.message)}")
    if config["mimic_iv_dir"] is None and config["mimic_cxr_dir"] is not None:
        raise MedfuseError(f"{source}: key 'mimic_cxr_dir' is set but 'mimic_iv_dir' is null; set both or neither")
    if config["mimic_iv_dir"] is not None and config["mimic_cxr_dir"] is None:
        raise MedfuseError(f"{source}: key 'mimic_iv_dir' is set but 'mimic_cxr_dir' is null; set both or neither")
    split = config["etl"]["split"]
    if split["train"] + split["val"] > 1:
        raise MedfuseError(f"{source}: keys 'etl.split.train' + 'etl.split.val' exceed 1")
    lr_min, lr_max = config["train"]["lr_min"], config["train"]["lr_max"]
    if lr_min is not None and lr_max is not None and lr_min > lr_max:
        raise MedfuseError(f"{source}: key 'train.lr_min' is larger than 'train.lr_max'")
    return config


def is_synthetic(config: dict[str, Any]) -> bool:
    return config["mimic_iv_dir"] is None


def resolve_config(config: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of a validated config with the scale's values filled into every null budget key."""
    resolved = copy.deepcopy(config)
    # One spelling of the workdir, so generated paths and rule outputs match ("results/" == "results").
    resolved["workdir"] = os.path.normpath(resolved["workdir"])
    scale = resolved["scale"] or ("demo" if is_synthetic(resolved) else "paper")
    resolved["scale"] = scale
    for section, values in SCALES[scale].items():
        for key, value in values.items():
            if resolved[section].get(key) is None:
                resolved[section][key] = copy.deepcopy(value)
    if resolved["train"]["lr_min"] > resolved["train"]["lr_max"]:
        raise MedfuseError("config: key 'train.lr_min' is larger than 'train.lr_max' (after applying the scale)")
    if is_synthetic(resolved):
        root = Path(resolved["workdir"]) / "synthetic"
        resolved["mimic_iv_dir"] = str(root / "mimic-iv")
        resolved["mimic_cxr_dir"] = str(root / "mimic-cxr-jpg")
        resolved["synthetic"]["enabled"] = True
    else:
        resolved["synthetic"]["enabled"] = False
    return resolved


def load_config(path: str | os.PathLike[str] = "config.yaml", overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read, validate and resolve a config file; ``overrides`` are merged over it first (nested dicts merge)."""
    path = Path(path)
    if not path.exists():
        raise MedfuseError(f"config file '{path}' does not exist")
    try:
        with path.open() as fh:
            config = yaml.safe_load(fh) or {}
    except yaml.YAMLError as exc:
        raise MedfuseError(f"config file '{path}' is not valid YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise MedfuseError(f"config file '{path}' must hold a mapping of keys")
    if overrides:
        config = merge(config, overrides)
    return resolve_config(validate_config(config, source=str(path)))


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
