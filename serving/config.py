"""Serving configuration: offer rules, experiments, event log and precompute settings.

Every threshold lives in one TOML file, ``serving/rules.toml`` (or the file named by the
environment variable ``TAILOR_RULES``). :func:`load_config` reads it into frozen
dataclasses and checks every value, so a typo fails at start-up with the key that is wrong.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_RULES = Path(__file__).with_name("rules.toml")
RULES_ENV = "TAILOR_RULES"
POLICIES = ("personalised", "personalised_no_discount", "popular")
SYNCHRONOUS = ("NORMAL", "FULL")


class ConfigError(ValueError):
    """The serving configuration file has a missing or invalid value."""


def tier_key(tier: object) -> str:
    """Normalise a value-tier name: ``"Most Valuable"`` -> ``"most_valuable"``."""
    return str(tier).strip().lower().replace(" ", "_").replace("-", "_")


@dataclass(frozen=True)
class OfferRules:
    default_n: int = 10
    max_n: int = 50
    max_per_category: int = 2
    replenish_share: float = 0.6
    deal_lift: float = 0.3
    discount_replenish_without_deal: bool = False
    discount_default: float = 0.05
    discount_by_tier: dict[str, float] = field(default_factory=dict)
    below_zero_tiers: tuple[str, ...] = ("below_zero",)
    retention_min_value_at_risk: float = 25.0
    retention_discount: float = 0.25
    retention_protected_value_share: float = 0.1
    cold_start_discount: float = 0.0
    non_personalised_discount: float = 0.0


@dataclass(frozen=True)
class Arm:
    name: str
    weight: float
    policy: str


@dataclass(frozen=True)
class Experiment:
    name: str
    salt: str
    arms: tuple[Arm, ...]


@dataclass(frozen=True)
class ExperimentsConfig:
    universal_control_share: float = 0.05
    universal_control_salt: str = "tailor-universal-control-v1"
    default: str = "default"
    definitions: dict[str, Experiment] = field(default_factory=dict)


@dataclass(frozen=True)
class EventLogConfig:
    synchronous: str = "NORMAL"
    busy_timeout_ms: int = 5000
    journal_flush_seconds: float = 1.0


@dataclass(frozen=True)
class PrecomputeConfig:
    replenish_k: int = 40
    discover_k: int = 30
    active_days: int = 90
    popular_days: int = 28
    popular_k: int = 200


@dataclass(frozen=True)
class ServingConfig:
    rules: OfferRules
    experiments: ExperimentsConfig
    eventlog: EventLogConfig
    precompute: PrecomputeConfig
    source: str = ""


def _get(section: dict, key: str, kind, where: str, default=None):
    if key not in section:
        if default is None:
            raise ConfigError(f"{where}: missing key '{key}'")
        return default
    value = section[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
        raise ConfigError(f"{where}.{key}: expected {kind.__name__}, got {value!r}")
    return value


def _share(value: float, where: str) -> float:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{where}: must be between 0 and 1, got {value}")
    return value


def _positive(value: int, where: str) -> int:
    if value < 1:
        raise ConfigError(f"{where}: must be at least 1, got {value}")
    return value


def _rules(raw: dict, where: str) -> OfferRules:
    off, disc = raw.get("offers", {}), raw.get("discount", {})
    ret, cold, nonp = (
        raw.get("retention", {}),
        raw.get("cold_start", {}),
        raw.get("non_personalised", {}),
    )
    by_tier = {
        tier_key(k): _share(float(v), f"{where}: discount.by_tier.{k}")
        for k, v in disc.get("by_tier", {}).items()
    }
    rules = OfferRules(
        default_n=_positive(
            _get(off, "default_n", int, f"{where}: offers", 10), f"{where}: offers.default_n"
        ),
        max_n=_positive(_get(off, "max_n", int, f"{where}: offers", 50), f"{where}: offers.max_n"),
        max_per_category=_positive(
            _get(off, "max_per_category", int, f"{where}: offers", 2),
            f"{where}: offers.max_per_category",
        ),
        replenish_share=_share(
            _get(off, "replenish_share", float, f"{where}: offers", 0.6),
            f"{where}: offers.replenish_share",
        ),
        deal_lift=_get(off, "deal_lift", float, f"{where}: offers", 0.3),
        discount_replenish_without_deal=_get(
            off, "discount_replenish_without_deal", bool, f"{where}: offers", False
        ),
        discount_default=_share(
            _get(disc, "default", float, f"{where}: discount", 0.05), f"{where}: discount.default"
        ),
        discount_by_tier=by_tier,
        below_zero_tiers=tuple(tier_key(t) for t in disc.get("below_zero_tiers", ["below_zero"])),
        retention_min_value_at_risk=_get(
            ret, "min_value_at_risk", float, f"{where}: retention", 25.0
        ),
        retention_discount=_share(
            _get(ret, "discount", float, f"{where}: retention", 0.25),
            f"{where}: retention.discount",
        ),
        retention_protected_value_share=_share(
            _get(ret, "protected_value_share", float, f"{where}: retention", 0.1),
            f"{where}: retention.protected_value_share",
        ),
        cold_start_discount=_share(
            _get(cold, "discount", float, f"{where}: cold_start", 0.0),
            f"{where}: cold_start.discount",
        ),
        non_personalised_discount=_share(
            _get(nonp, "discount", float, f"{where}: non_personalised", 0.0),
            f"{where}: non_personalised.discount",
        ),
    )
    if rules.default_n > rules.max_n:
        raise ConfigError(
            f"{where}: offers.default_n ({rules.default_n}) is larger than offers.max_n ({rules.max_n})"
        )
    if rules.deal_lift < 0:
        raise ConfigError(f"{where}: offers.deal_lift must be >= 0, got {rules.deal_lift}")
    return rules


def _experiments(raw: dict, where: str) -> ExperimentsConfig:
    sec = raw.get("experiments", {})
    defs = {}
    for name, d in sec.get("definitions", {}).items():
        w = f"{where}: experiments.definitions.{name}"
        arms_raw = d.get("arms")
        if not arms_raw:
            raise ConfigError(f"{w}: needs at least one arm")
        arms = []
        for i, a in enumerate(arms_raw):
            aw = f"{w}.arms[{i}]"
            arm = Arm(
                name=_get(a, "name", str, aw),
                weight=_get(a, "weight", float, aw),
                policy=_get(a, "policy", str, aw, "personalised"),
            )
            if arm.weight <= 0:
                raise ConfigError(f"{aw}: weight must be > 0, got {arm.weight}")
            if arm.policy not in POLICIES:
                raise ConfigError(
                    f"{aw}: unknown policy {arm.policy!r}; expected one of {', '.join(POLICIES)}"
                )
            if arm.name == "universal_control":
                raise ConfigError(f"{aw}: the arm name 'universal_control' is reserved")
            arms.append(arm)
        if len({a.name for a in arms}) != len(arms):
            raise ConfigError(f"{w}: arm names must be unique")
        defs[name] = Experiment(name=name, salt=_get(d, "salt", str, w, name), arms=tuple(arms))
    cfg = ExperimentsConfig(
        universal_control_share=_share(
            _get(sec, "universal_control_share", float, f"{where}: experiments", 0.05),
            f"{where}: experiments.universal_control_share",
        ),
        universal_control_salt=_get(
            sec,
            "universal_control_salt",
            str,
            f"{where}: experiments",
            "tailor-universal-control-v1",
        ),
        default=_get(sec, "default", str, f"{where}: experiments", "default"),
        definitions=defs,
    )
    if cfg.default not in defs:
        raise ConfigError(
            f"{where}: experiments.default {cfg.default!r} is not among the definitions ({', '.join(defs) or 'none'})"
        )
    return cfg


def _eventlog(raw: dict, where: str) -> EventLogConfig:
    sec = raw.get("eventlog", {})
    sync = _get(sec, "synchronous", str, f"{where}: eventlog", "NORMAL").upper()
    if sync not in SYNCHRONOUS:
        raise ConfigError(
            f"{where}: eventlog.synchronous must be one of {', '.join(SYNCHRONOUS)}, got {sync!r}"
        )
    flush = _get(sec, "journal_flush_seconds", float, f"{where}: eventlog", 1.0)
    if not 0 < flush <= 60:
        raise ConfigError(
            f"{where}: eventlog.journal_flush_seconds must be in (0, 60], got {flush}"
        )
    return EventLogConfig(
        synchronous=sync,
        busy_timeout_ms=_get(sec, "busy_timeout_ms", int, f"{where}: eventlog", 5000),
        journal_flush_seconds=flush,
    )


def _precompute(raw: dict, where: str) -> PrecomputeConfig:
    sec, cold = raw.get("precompute", {}), raw.get("cold_start", {})
    return PrecomputeConfig(
        replenish_k=_positive(
            _get(sec, "replenish_k", int, f"{where}: precompute", 40),
            f"{where}: precompute.replenish_k",
        ),
        discover_k=_positive(
            _get(sec, "discover_k", int, f"{where}: precompute", 30),
            f"{where}: precompute.discover_k",
        ),
        active_days=_positive(
            _get(sec, "active_days", int, f"{where}: precompute", 90),
            f"{where}: precompute.active_days",
        ),
        popular_days=_positive(
            _get(cold, "popular_days", int, f"{where}: cold_start", 28),
            f"{where}: cold_start.popular_days",
        ),
        popular_k=_positive(
            _get(cold, "popular_k", int, f"{where}: cold_start", 200),
            f"{where}: cold_start.popular_k",
        ),
    )


def parse_config(raw: dict, where: str = "rules") -> ServingConfig:
    """Build a :class:`ServingConfig` from a parsed TOML document (``where`` names it in errors)."""
    return ServingConfig(
        rules=_rules(raw, where),
        experiments=_experiments(raw, where),
        eventlog=_eventlog(raw, where),
        precompute=_precompute(raw, where),
        source=where,
    )


def load_config(path: str | Path | None = None) -> ServingConfig:
    """Read the serving configuration (``path``, else ``$TAILOR_RULES``, else ``serving/rules.toml``)."""
    path = Path(path or os.environ.get(RULES_ENV) or DEFAULT_RULES)
    if not path.exists():
        raise ConfigError(f"serving configuration {path} does not exist")
    with open(path, "rb") as fh:
        try:
            raw = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_config(raw, str(path))
