"""TOML configuration → typed, checked config. An unknown key or a value of the wrong type stops
the start with one line naming the key."""

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Any, get_args, get_origin, get_type_hints


class ConfigError(Exception):
    """One line naming the key and what is wrong with it."""


@dataclass
class SmppConfig:
    host: str = "127.0.0.1"
    port: int = 2775
    window: int = 50  # unanswered requests per client session; more → ESME_RTHROTTLED
    system_id: str = "smsc"  # ours, in bind responses
    max_pdu_size: int = 65536
    session_init_timer: float = 30.0
    enquire_link_timer: float = 30.0
    inactivity_timer: float = 300.0
    response_timer: float = 30.0


@dataclass
class StoreConfig:
    url: str = "sqlite:///smsc.db"


@dataclass
class AccountConfig:
    """An account created at start when missing (the demo's); never changed when present."""

    system_id: str
    password: str


@dataclass
class Config:
    smpp: SmppConfig = field(default_factory=SmppConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    accounts: list[AccountConfig] = field(default_factory=list)


def load(path: str | Path) -> Config:
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return _build(Config, raw, "")


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'}: expected a table")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    values = {}
    for key, value in raw.items():
        name = f"{where}.{key}" if where else key
        if key not in names:
            raise ConfigError(f"{name}: unknown key")
        values[key] = _convert(hints[key], value, name)
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}.{missing[0]}: required")
    return cls(**values)


def _convert(hint: Any, value: Any, name: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, name)
    origin = get_origin(hint)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{name}: expected a list")
        (item,) = get_args(hint)
        return [_convert(item, v, f"{name}[{i}]") for i, v in enumerate(value)]
    if origin is UnionType:
        hint = next(a for a in get_args(hint) if a is not type(None))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{name}: expected {hint.__name__}, got {type(value).__name__}")
    return value
