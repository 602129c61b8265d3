"""Experiment assignment, the universal control group and the serving configuration file."""

from __future__ import annotations

import tomllib

import pytest

from serving.config import DEFAULT_RULES, ConfigError, load_config, parse_config
from serving.experiments import (
    UNIVERSAL_CONTROL,
    UnknownExperimentError,
    assign,
    in_universal_control,
    unit_hash,
)

CFG = load_config()
EXP = CFG.experiments
IDS = range(1, 20_001)


def test_unit_hash_is_pinned_and_uniform():
    # pinned: changing the hash would silently reshuffle every running experiment
    assert unit_hash("default-v1", 1) == pytest.approx(
        int.from_bytes(__import__("hashlib").sha256(b"default-v1:1").digest()[:8], "big") / 2**64
    )
    vals = [unit_hash("s", i) for i in IDS]
    assert 0 <= min(vals) and max(vals) < 1
    assert abs(sum(v < 0.25 for v in vals) / len(vals) - 0.25) < 0.015


def test_assignment_is_deterministic_and_returned_with_policy():
    a = [assign(i, "personalisation", EXP) for i in range(200)]
    b = [assign(i, "personalisation", EXP) for i in range(200)]
    assert a == b
    assert {x.arm for x in a} == {"personalised", "popular", UNIVERSAL_CONTROL}
    assert all(
        (x.arm == "popular") == (x.policy == "popular") for x in a if x.arm != UNIVERSAL_CONTROL
    )


def test_arms_follow_their_weights():
    arms = [assign(i, "personalisation", EXP).arm for i in IDS]
    n = len(arms)
    ucg = arms.count(UNIVERSAL_CONTROL) / n
    assert abs(ucg - EXP.universal_control_share) < 0.01
    assert abs(arms.count("personalised") / n - 0.5 * (1 - ucg)) < 0.015
    assert abs(arms.count("popular") / n - 0.5 * (1 - ucg)) < 0.015


def test_universal_control_is_the_same_customers_in_every_experiment():
    for i in range(2000):
        arms = {assign(i, e, EXP).arm == UNIVERSAL_CONTROL for e in EXP.definitions}
        assert arms == {in_universal_control(i, EXP)}
    assert all(
        assign(i, e, EXP).policy == "popular"
        for e in EXP.definitions
        for i in range(2000)
        if in_universal_control(i, EXP)
    )


def test_salts_make_experiments_independent():
    a = [assign(i, "personalisation", EXP).arm for i in range(4000)]
    b = [assign(i, "discount-depth", EXP).arm for i in range(4000)]
    both = (
        sum(x == "personalised" and y == "tiered_discount" for x, y in zip(a, b, strict=True))
        / 4000
    )
    assert abs(both - 0.95 * 0.95 * 0.25 / 0.95) < 0.04  # about a quarter of non-control customers


def test_default_experiment_and_unknown_experiment():
    assert assign(5, None, EXP).experiment == EXP.default
    with pytest.raises(
        UnknownExperimentError, match="unknown experiment 'nope'; configured experiments: default"
    ):
        assign(5, "nope", EXP)


def _raw():
    with open(DEFAULT_RULES, "rb") as fh:
        return tomllib.load(fh)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ("offers", "replenish_share"),
            1.5,
            r"offers.replenish_share: must be between 0 and 1, got 1.5",
        ),
        (("offers", "max_per_category"), 0, r"offers.max_per_category: must be at least 1"),
        (("offers", "default_n"), "ten", r"offers.default_n: expected int, got 'ten'"),
        (("eventlog", "synchronous"), "OFF", r"eventlog.synchronous must be one of NORMAL, FULL"),
        (
            ("experiments", "default"),
            "missing",
            r"experiments.default 'missing' is not among the definitions",
        ),
        (
            ("experiments", "universal_control_share"),
            -0.1,
            r"universal_control_share: must be between 0 and 1",
        ),
    ],
)
def test_config_errors_name_the_key(path, value, message):
    raw = _raw()
    raw[path[0]][path[1]] = value
    with pytest.raises(ConfigError, match=message):
        parse_config(raw, "test")


def test_config_rejects_bad_arms():
    raw = _raw()
    raw["experiments"]["definitions"]["default"]["arms"] = [
        {"name": "a", "weight": 1.0, "policy": "magic"}
    ]
    with pytest.raises(ConfigError, match=r"arms\[0\]: unknown policy 'magic'"):
        parse_config(raw, "test")
    raw["experiments"]["definitions"]["default"]["arms"] = [
        {"name": "universal_control", "weight": 1.0}
    ]
    with pytest.raises(ConfigError, match="reserved"):
        parse_config(raw, "test")


def test_load_config_from_env(tmp_path, monkeypatch):
    p = tmp_path / "r.toml"
    p.write_text(DEFAULT_RULES.read_text().replace("max_per_category = 2", "max_per_category = 3"))
    monkeypatch.setenv("TAILOR_RULES", str(p))
    assert load_config().rules.max_per_category == 3
    monkeypatch.setenv("TAILOR_RULES", str(tmp_path / "none.toml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config()
