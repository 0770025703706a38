"""Settings: defaults < ``engage-console.toml`` < ``ENGAGE_*`` environment < command-line flags.

Every setting is a field of :class:`Settings`; its type and allowed values live here only.
Relative paths are taken from the working directory, as the sample scripts did.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError

DEFAULT_CONFIG_FILE = "engage-console.toml"
ENV_PREFIX = "ENGAGE_"
TLS_VERSIONS = ("1.0", "1.1", "1.2", "1.3")
# ENGAGE_* variables that are not settings but are read elsewhere (site key, config file, the
# passphrases of `certs import`, the console the tmux tests drive). Any other is refused.
# Settings renamed since an earlier release: the old name still works, as the new one.
RENAMED = {"serial_prefix": "identity_prefix", "serial_digits": "identity_type",
           "serial_length": "identity_length"}
OTHER_ENV = ("ENGAGE_CONFIG", "ENGAGE_SITE_KEY", "ENGAGE_KEY_PASSPHRASE", "ENGAGE_P12_PASSWORD",
             "ENGAGE_CONSOLE")


def _setting(default: Any, help: str, choices: tuple = (), minimum: float | None = None,
             maximum: float | None = None):
    meta = {"help": help, "choices": choices, "min": minimum, "max": maximum}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Settings:
    bind: str = _setting("0.0.0.0", "address both listeners bind to")
    http_port: int = _setting(80, "plain HTTP port (certificate delivery)", minimum=0, maximum=65535)
    tls_port: int = _setting(443, "TLS port (lock call-ins)", minimum=0, maximum=65535)
    public_base_url: str = _setting(
        "", "base of cert_url, e.g. http://10.44.68.128 (empty: from the request's Host)")
    certs_dir: str = _setting("certs", "folder of certificate sets")
    ca_dir: str = _setting("ca", "folder of CA keys made by `certs init`, kept apart from the sets")
    data_dir: str = _setting("Engage_Data", "folder of device records")
    logs_dir: str = _setting("logs", "folder of the request log")
    site_key_file: str = _setting("site.key", "file holding the site key (Base64 or hex)")
    control_socket: str = _setting(
        "run/engage-console.sock", "the running host's control socket (its folder: mode 0700)")
    hmac_key_form: str = _setting(
        "raw", "what keys the HMAC: the 32 raw bytes or the ASCII Base64 text", ("raw", "ascii"))
    tls_min_version: str = _setting("1.2", "lowest TLS version the TLS listener accepts", TLS_VERSIONS)
    client_ca_file: str = _setting("", "CA file to require client certificates (empty: off)")
    host_names: list = _setting(
        [], "names and addresses locks use for this host (server certificate SAN, host check)")
    connection_timeout: float = _setting(
        10.0, "seconds a silent connection or unfinished handshake is kept", minimum=0.1, maximum=600)
    log_ring_size: int = _setting(10000, "request events kept in memory", minimum=10)
    log_max_bytes: int = _setting(10 * 1024 * 1024, "size at which requests.jsonl is rotated",
                                  minimum=1024)
    log_backups: int = _setting(3, "rotated request logs kept", minimum=0, maximum=100)
    max_body_bytes: int = _setting(1024 * 1024, "largest request body accepted", minimum=1024)
    threads: int = _setting(2, "event-loop threads per listener (see README)", minimum=1,
                           maximum=1000)
    callin_interval: int = _setting(
        600, "seconds until a lock's next call-in (dbDwnLdTm in the db reply)",
        minimum=60, maximum=7 * 24 * 3600)
    overdue_factor: float = _setting(
        2.0, "a lock is overdue after this many call-in intervals without a call-in",
        minimum=1.0, maximum=1000)
    fetch_attribution_seconds: int = _setting(
        3600, "an anchor download is attributed to the lock whose TLS call-in from the same "
        "address follows within this many seconds", minimum=1, maximum=7 * 24 * 3600)
    time_zone: str = _setting(
        "local", "site time zone for the locks' clock (rtcTime, dbDwnLdTm): an IANA name such "
        "as America/Chicago, or local for this machine's")
    callins_tls_only: bool = _setting(
        False, "serve lock call-ins only on the TLS listener (plain HTTP gets 403)")
    allowlist: bool = _setting(
        False, "serve only listed locks (devices import); others get 403 and a flagged event")
    identity_prefix: str = _setting("", "text every lock identity (serial) starts with")
    identity_type: str = _setting(
        "hex", "what follows the prefix in a lock identity (West Connectivity's types)",
        ("decimal", "hex", "mac", "mac-colon", "mac-dash", "uuid4", "opaque"))
    identity_length: int = _setting(
        0, "characters of a lock identity after the prefix (0: any length)", minimum=0,
        maximum=64)
    activation_hours: float = _setting(
        48.0, "hours a listed lock has to make its first call-in before its listing expires",
        minimum=0.01, maximum=24 * 365)
    provision_networks: list = _setting(
        [], "networks (CIDR) a lock's first registration must come from (empty: any)")
    max_batch_size: int = _setting(10000, "most certificates in one batch (certs batch create)",
                                   minimum=1, maximum=1_000_000)
    # Which of these fields were set by a file, the environment or a flag (not defaults).
    explicit: set = field(default_factory=set, repr=False, compare=False,
                          metadata={"internal": True})

    def path(self, name: str) -> Path:
        return Path(getattr(self, name)).expanduser()

    @property
    def tls_version_warning(self) -> str | None:
        if self.tls_min_version in ("1.0", "1.1"):
            return (f"TLS {self.tls_min_version} is allowed on the TLS listener: only keep it "
                    "for locks whose firmware cannot do TLS 1.2")
        return None


def setting_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(Settings) if not f.metadata.get("internal")]


def _coerce(f: dataclasses.Field, value: Any, source: str) -> Any:
    """Turn a file, environment or flag value into the field's type, or say what is allowed."""
    kind = type(f.default) if f.default is not dataclasses.MISSING else list
    where = f"{source}: {f.name}"
    try:
        if kind is list:
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError("expected a list of strings")
        elif kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError("expected true or false")
                value = value.lower() in ("1", "true", "yes", "on")
            elif not isinstance(value, bool):
                raise ValueError("expected true or false")
        elif kind is int:
            if isinstance(value, bool) or isinstance(value, float):
                raise ValueError("expected a whole number")
            value = int(value)
        elif kind is float:
            if isinstance(value, bool):
                raise ValueError("expected a number")
            value = float(value)
            if not math.isfinite(value):
                raise ValueError("expected a finite number")
        else:
            if not isinstance(value, str):
                raise ValueError("expected text")
    except (TypeError, ValueError) as exc:
        msg = str(exc) if "expected" in str(exc) else f"expected {kind.__name__}"
        raise ConfigError(f"{where} = {value!r}: {msg}") from None
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{where} = {value!r}: allowed values are {', '.join(choices)}")
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    if lo is not None and value < lo or hi is not None and value > hi:
        allowed = (f"allowed range is {lo} to {hi}" if lo is not None and hi is not None
                   else f"must be at least {lo}" if lo is not None else f"must be at most {hi}")
        raise ConfigError(f"{where} = {value!r}: {allowed}")
    return value


def _check_environment(env: Mapping[str, str]) -> None:
    """Refuse an ``ENGAGE_*`` variable that nothing reads (a typo), naming the nearest one."""
    names = [f.name for f in setting_fields()] + list(RENAMED)
    known = [ENV_PREFIX + name.upper() for name in names] + list(OTHER_ENV)
    for key in env:
        if key.startswith(ENV_PREFIX) and key not in known:
            near = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {near[0]}?" if near else f"known: {', '.join(known)}"
            raise ConfigError(f"environment {key}: not a setting of engage-console; {hint}")


def _apply(settings: Settings, values: Mapping[str, Any], source: str) -> None:
    known = {f.name: f for f in setting_fields()}
    for name, value in values.items():
        where = source
        if name in RENAMED:
            new = RENAMED[name]
            if new in values:
                raise ConfigError(f"{source}: {name} is the old name of {new}; give only {new}")
            where, name = f"{source}: {name} (now called {new})", new
        if name not in known:
            raise ConfigError(
                f"{source}: unknown setting {name!r}; known settings: {', '.join(sorted(known))}")
        setattr(settings, name, _coerce(known[name], value, where))
        settings.explicit.add(name)


def load_settings(config_file: str | os.PathLike | None = None,
                  env: Mapping[str, str] | None = None,
                  flags: Mapping[str, Any] | None = None) -> Settings:
    """Build settings from the layers. A named config file must exist; the default one may not."""
    settings = Settings()
    env = os.environ if env is None else env
    _check_environment(env)
    path = Path(config_file or env.get(ENV_PREFIX + "CONFIG") or DEFAULT_CONFIG_FILE)
    if config_file or ENV_PREFIX + "CONFIG" in env or path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        _apply(settings, data, str(path))
    for name in list(RENAMED) + [f.name for f in setting_fields()]:  # a new name wins
        key = ENV_PREFIX + name.upper()
        if key in env:
            _apply(settings, {name: env[key]}, f"environment {key}")
    _apply(settings, {k: v for k, v in (flags or {}).items() if v is not None}, "command line")
    return settings
