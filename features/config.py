"""Project settings: where data, MLflow and the serving stores live.

Resolution order (later wins): built-in defaults -> ``tailor.toml`` in the working
directory (or the file named by ``TAILOR_CONFIG``) -> environment variables.

Every default is inside ``./var`` (git-ignored), so a fresh clone works with no set-up.
"""

from __future__ import annotations

import logging
import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

logger = logging.getLogger(__name__)

ENV_PREFIX = "TAILOR_"


@dataclass(frozen=True)
class Settings:
    """Locations and switches shared by every command.

    Attributes
    ----------
    home : Path
        Root of everything the project writes (default ``./var``).
    data_dir : Path
        Canonical tables and feature files (``TAILOR_DATA_DIR``).
    mlflow_tracking_uri : str
        MLflow tracking store; ``MLFLOW_TRACKING_URI`` overrides. Default: SQLite in ``home``.
    mlflow_artifact_root : Path
        Local artifact folder used with the default SQLite store.
    serving_dir : Path
        Lookup store and event log of the offer service.
    pseudonym_key : str
        Key for the keyed hash of customer ids in exports (``TAILOR_PSEUDONYM_KEY``).
    """

    home: Path = Path("var")
    data_dir: Path | None = None
    mlflow_tracking_uri: str | None = None
    mlflow_artifact_root: Path | None = None
    serving_dir: Path | None = None
    pseudonym_key: str = "change-me"
    source: str = "completejourney"
    seed: int = 42
    extra: dict = field(default_factory=dict)

    def resolved(self) -> Settings:
        home = Path(self.home).absolute()
        return replace(
            self,
            home=home,
            data_dir=Path(self.data_dir or home / "data").absolute(),
            mlflow_tracking_uri=self.mlflow_tracking_uri or f"sqlite:///{home / 'mlflow.db'}",
            mlflow_artifact_root=Path(self.mlflow_artifact_root or home / "mlartifacts").absolute(),
            serving_dir=Path(self.serving_dir or home / "serving").absolute(),
        )


class SettingsError(ValueError):
    """The settings file cannot be read (missing, not TOML)."""


def _from_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"settings file {path} is not valid TOML: {exc}") from exc
    except OSError as exc:
        raise SettingsError(f"cannot read the settings file {path}: {exc}") from exc
    section = raw.get("tailor", raw)
    known = {f.name for f in fields(Settings)}
    out = {k: v for k, v in section.items() if k in known}
    out["extra"] = {k: v for k, v in section.items() if k not in known}
    return out


def get_settings(**overrides) -> Settings:
    """Return the resolved settings (defaults, then config file, then environment, then overrides)."""
    values: dict = {}
    cfg = os.environ.get(ENV_PREFIX + "CONFIG")
    cfg_path = Path(cfg) if cfg else Path("tailor.toml")
    if cfg_path.exists():
        values.update(_from_toml(cfg_path))
    elif cfg:
        raise SettingsError(f"TAILOR_CONFIG points to {cfg_path}, which does not exist")
    env_map = {
        "home": ENV_PREFIX + "HOME",
        "data_dir": ENV_PREFIX + "DATA_DIR",
        "serving_dir": ENV_PREFIX + "SERVING_DIR",
        "pseudonym_key": ENV_PREFIX + "PSEUDONYM_KEY",
        "source": ENV_PREFIX + "SOURCE",
        "mlflow_tracking_uri": "MLFLOW_TRACKING_URI",
    }
    for key, var in env_map.items():
        if os.environ.get(var):
            values[key] = os.environ[var]
    values.update({k: v for k, v in overrides.items() if v is not None})
    for key in ("home", "data_dir", "mlflow_artifact_root", "serving_dir"):
        if values.get(key) is not None:
            values[key] = Path(values[key])
    return Settings(**values).resolved()
