"""Configuration: which broker, which keys, which output.

Precedence (highest first): command-line flags, environment, `.env` in the
current directory, a profile of the TOML config file, defaults. The variable
names are Alpaca's own (`APCA_*`) so existing shells and SDK setups just work.

The secret lives in a `SecretStr`: its repr is masked, so it cannot leak into
a log line, a traceback with locals, or a JSON dump by accident. The only
place that unwraps it is the bridge, when it hands it to the SDK.

This module imports pydantic; import it inside commands, never at the top of
the CLI (start-up time of `--help` and completion).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from alpaca_cli.errors import UsageError

PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_HOST = "api.alpaca.markets"
DATA_URL = "https://data.alpaca.markets"
DATA_STREAM_URL = "wss://stream.data.alpaca.markets"
SANDBOX_URL = "http://127.0.0.1:8765"
SANDBOX_KEY_ID = "SANDBOXKEY"
SANDBOX_SECRET = "SANDBOXSECRET"
# Seconds one broker call may take in all (connect, reads, retries, waits for the rate
# limit): a command facing a silent or trickling broker ends well inside the contract's 60 s,
# even `submit --wait` (the stream's 10 s, the POST, then the lookup that decides).
DEFAULT_DEADLINE = 20.0

PROFILE_VARIABLE = "ALPACA_CLI_PROFILE"

OutputMode = Literal["auto", "table", "json"]
Environment = Literal["sandbox", "paper", "live"]


def config_path() -> Path:
    """The config file: `$ALPACA_CLI_CONFIG` or `<platform config dir>/config.toml`."""
    override = os.environ.get("ALPACA_CLI_CONFIG")
    if override:
        return Path(override)
    from platformdirs import user_config_path

    return user_config_path("alpaca-cli") / "config.toml"


class _ProfileSource(PydanticBaseSettingsSource):
    """Reads one `[profile]` table of the config file (lowest precedence but defaults).

    Each table holds the same names as the settings (`key_id`, `secret_key`,
    `base_url`, ...). An unknown profile asked for by name is an error; a missing
    file or a missing `default` table simply contributes nothing.
    """

    def __init__(self, settings_cls: type[BaseSettings], profile: str | None) -> None:
        super().__init__(settings_cls)
        self._profile = profile
        self.name = profile or "default"
        self.path = config_path()

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ reads the whole table at once

    def __call__(self) -> dict[str, Any]:
        path, name = self.path, self.name
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            if self._profile:
                raise UsageError(
                    f"profile {name!r} asked for but config file {path} does not exist",
                    hint="create it with a [profile] table, or drop --profile",
                ) from None
            return {}
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise UsageError(f"cannot read config file {path}: {exc}") from None
        table = document.get(name)
        if table is None:
            if self._profile:
                known = ", ".join(sorted(k for k, v in document.items() if isinstance(v, dict)))
                raise UsageError(f"profile {name!r} not found in {path}", hint=f"known profiles: {known or 'none'}")
            return {}
        if not isinstance(table, dict):
            raise UsageError(f"profile {name!r} in {path} is not a table")
        unknown = set(table) - set(self.settings_cls.model_fields)
        if unknown:
            raise UsageError(f"unknown setting(s) {', '.join(sorted(unknown))} in profile {name!r} of {path}")
        return {self.settings_cls.model_fields[name].validation_alias: value for name, value in table.items()}


class Settings(BaseSettings):
    """Every knob the tool reads, under the contract's names.

    Each field's alias is its one environment variable (and `.env` name). Flags and profile
    tables use the field names, which their sources turn into the aliases: were a field name
    accepted too (`populate_by_name`), a stray `LIVE=1` or `SANDBOX=1` in the environment would count.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,
    )

    key_id: str | None = Field(default=None, validation_alias="APCA_API_KEY_ID")
    secret_key: SecretStr | None = Field(default=None, validation_alias="APCA_API_SECRET_KEY")
    base_url: str = Field(default=PAPER_URL, validation_alias="APCA_API_BASE_URL")
    stream_url: str | None = Field(default=None, validation_alias="APCA_API_STREAM_URL")
    data_url: str = Field(default=DATA_URL, validation_alias="APCA_API_DATA_URL")
    data_stream_url: str = Field(
        default=DATA_STREAM_URL,
        validation_alias="APCA_API_DATA_STREAM_URL",
    )
    profile: str | None = Field(default=None, validation_alias=PROFILE_VARIABLE)
    sandbox: bool = Field(default=False, validation_alias="ALPACA_CLI_SANDBOX")
    sandbox_url: str = Field(default=SANDBOX_URL, validation_alias="ALPACA_CLI_SANDBOX_URL")
    output: OutputMode = Field(default="auto", validation_alias="ALPACA_CLI_OUTPUT")
    live: bool = Field(default=False, validation_alias="ALPACA_CLI_LIVE")
    deadline: float = Field(default=DEFAULT_DEADLINE, gt=0, le=600, validation_alias="ALPACA_CLI_DEADLINE")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The profile's name may itself come from a flag, the environment or .env,
        # so it is resolved from those sources before the profile table is read.
        profile = None
        for source in (init_settings, env_settings, dotenv_settings):
            found = source().get(PROFILE_VARIABLE)
            if found:
                profile = found
                break
        return (init_settings, env_settings, dotenv_settings, _ProfileSource(settings_cls, profile))


@dataclass(frozen=True, slots=True)
class Connection:
    """The resolved endpoints and credentials one command talks to."""

    environment: Environment
    key_id: str
    secret: SecretStr = field(repr=False)  # masked anyway; kept out of the repr entirely
    trading_url: str
    stream_url: str
    data_url: str
    data_stream_base: str
    deadline: float = DEFAULT_DEADLINE  # seconds one broker call may take in all

    @property
    def is_live(self) -> bool:
        return self.environment == "live"

    def data_stream_url(self, feed: str) -> str:
        return f"{self.data_stream_base.rstrip('/')}/v2/{feed}"


def _stream_url_for(base_url: str) -> str:
    """Derive the trading stream URL from the REST base: http->ws, https->wss, path /stream."""
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "/stream", "", ""))


def _strip(url: str) -> str:
    return url.rstrip("/")


def _by_alias(flags: dict[str, Any]) -> dict[str, Any]:
    """The flags given (None or False: not given), under the names `Settings` validates."""
    fields = Settings.model_fields
    return {
        fields[name].validation_alias: value
        for name, value in flags.items()
        if value is not None and value is not False
    }


def load_settings(**flags: Any) -> Settings:
    """Build settings with the given command-line flags on top (None means 'not given')."""
    try:
        return Settings(**_by_alias(flags))
    except UsageError:
        raise
    except ValueError as exc:  # pydantic ValidationError; input values are hidden from it
        first = str(exc).splitlines()
        raise UsageError(f"invalid configuration: {' '.join(line.strip() for line in first[1:3])}") from None


def _endpoints(settings: Settings) -> tuple[Environment, str, str, str, str]:
    """The environment and its trading, trading-stream, data and data-stream URLs."""
    if settings.sandbox:
        base = _strip(settings.sandbox_url)
        stream = _stream_url_for(base)
        return "sandbox", base, stream, base, stream.removesuffix("/stream")
    base = _strip(settings.base_url)
    environment: Environment = "live" if urlsplit(base).hostname == LIVE_HOST else "paper"
    stream = settings.stream_url or _stream_url_for(base)
    return environment, base, stream, _strip(settings.data_url), _strip(settings.data_stream_url)


def resolve(settings: Settings) -> Connection:
    """Turn settings into the endpoints and keys to use, or a clear usage error."""
    environment, trading, stream, data, data_stream = _endpoints(settings)
    if settings.sandbox:
        key_id, secret = SANDBOX_KEY_ID, SecretStr(SANDBOX_SECRET)
    elif not settings.key_id or settings.secret_key is None:
        raise UsageError(
            "no API credentials configured",
            hint="set APCA_API_KEY_ID and APCA_API_SECRET_KEY, use a --profile, or try --sandbox",
        )
    else:
        key_id, secret = settings.key_id, settings.secret_key
    return Connection(
        environment=environment,
        key_id=key_id,
        secret=secret,
        trading_url=trading,
        stream_url=stream,
        data_url=data,
        data_stream_base=data_stream,
        deadline=settings.deadline,
    )


@dataclass(frozen=True, slots=True)
class Origin:
    """Where one setting came from: a flag, an environment variable, `.env`, a profile of the
    config file, the default, or another setting it is derived from."""

    kind: Literal["flag", "environment", ".env", "profile", "default", "derived"]
    name: str | None = None  # the flag, the variable, the profile, or the setting derived from
    path: str | None = None  # the .env or config file

    def text(self) -> str:
        label = {"environment": "environment variable", "derived": "derived from"}.get(self.kind, self.kind)
        where = f" ({self.path})" if self.path else ""
        return f"{label} {self.name}{where}" if self.name else f"{label}{where}"

    def record(self) -> dict[str, str]:
        fields = {"from": self.kind, "name": self.name, "path": self.path}
        return {key: value for key, value in fields.items() if value is not None}


_FLAGS = {"output": "--output", "profile": "--profile", "sandbox": "--sandbox", "live": "--live"}


def origins(**flags: Any) -> dict[str, Origin]:
    """Where each field of `load_settings(**flags)` came from: the first of the same sources,
    in the same order of precedence, that has it (pydantic-settings keeps no such record)."""
    from pydantic_settings import (
        DotEnvSettingsSource,
        EnvSettingsSource,
        InitSettingsSource,
        SecretsSettingsSource,
    )

    fields = Settings.model_fields
    field_of = {field.validation_alias: name for name, field in fields.items()}
    sources = Settings.settings_customise_sources(
        Settings,
        init_settings=InitSettingsSource(Settings, init_kwargs=_by_alias(flags)),
        env_settings=EnvSettingsSource(Settings),
        dotenv_settings=DotEnvSettingsSource(Settings),
        file_secret_settings=SecretsSettingsSource(Settings),
    )
    found: dict[str, Origin] = {}
    for source in sources:
        for alias in source():
            name = field_of.get(alias)
            if name is None or name in found:
                continue
            if isinstance(source, InitSettingsSource):
                found[name] = Origin("flag", _FLAGS.get(name, name))
            elif isinstance(source, DotEnvSettingsSource):
                found[name] = Origin(".env", str(alias), str(Path(".env").resolve()))
            elif isinstance(source, EnvSettingsSource):
                found[name] = Origin("environment", str(alias))
            elif isinstance(source, _ProfileSource):
                found[name] = Origin("profile", source.name, str(source.path))
    return {name: found.get(name, Origin("default")) for name in fields}


SECRET_MASK = "********"  # the same whatever the secret: no hint of its length


def mask_key_id(key_id: str) -> str:
    """Enough of a key id to tell keys apart (its first and last four), not the whole id."""
    return f"{key_id[:4]}…{key_id[-4:]}" if len(key_id) >= 12 else SECRET_MASK


def describe(settings: Settings, origin: dict[str, Origin]) -> list[tuple[str, Any, Origin]]:
    """What `alpaca-cli config` shows: each resolved setting, its value, and where it came from.
    The secret appears only as `SECRET_MASK` (or None when unset)."""
    environment, trading, stream, data, data_stream = _endpoints(settings)
    sandbox = settings.sandbox
    derived = Origin("derived", "trading_url")
    config_file = os.environ.get("ALPACA_CLI_CONFIG")
    if sandbox:
        key_id, key_origin = SANDBOX_KEY_ID, origin["sandbox"]
        secret, secret_origin = SECRET_MASK, origin["sandbox"]
    else:
        key_id, key_origin = (mask_key_id(settings.key_id) if settings.key_id else None), origin["key_id"]
        secret, secret_origin = (SECRET_MASK if settings.secret_key else None), origin["secret_key"]
    return [
        ("environment", environment, origin["sandbox"] if sandbox else derived),
        ("profile", settings.profile or "default", origin["profile"]),
        (
            "config_file",
            str(config_path()),
            Origin("environment", "ALPACA_CLI_CONFIG") if config_file else Origin("default"),
        ),
        ("key_id", key_id, key_origin),
        ("secret_key", secret, secret_origin),
        ("trading_url", trading, origin["sandbox_url" if sandbox else "base_url"]),
        ("stream_url", stream, derived if sandbox or not settings.stream_url else origin["stream_url"]),
        ("data_url", data, origin["sandbox_url" if sandbox else "data_url"]),
        ("data_stream_url", data_stream, derived if sandbox else origin["data_stream_url"]),
        ("deadline", settings.deadline, origin["deadline"]),
        ("output", settings.output, origin["output"]),
        ("live_allowed", settings.live, origin["live"]),
    ]


def exposed_config_file() -> Path | None:
    """The config file, when it holds a secret and users other than its owner may read it
    (or write it: mode & 0o077). A stat per run; the file is read only when its mode is loose."""
    path = config_path()
    try:
        if not path.stat().st_mode & 0o077:
            return None
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    tables = [table for table in document.values() if isinstance(table, dict)]
    return path if any(table.get("secret_key") for table in tables) else None
