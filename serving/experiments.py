"""Deterministic experiment assignment and the universal control group.

A customer's arm is a pure function of (salt, customer id): the first 8 bytes of
``sha256(f"{salt}:{customer_id}")`` read as a number in [0, 1) pick an arm by cumulative
weight. No state is stored, every worker process agrees, and the same customer gets the
same arm on every request and every day until the salt changes.

The universal control group is a second, independent hash with its own salt: the
configured share of customers who always get non-personalised offers, whatever the
experiment. They are reported with the arm ``universal_control``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from serving.config import Experiment, ExperimentsConfig

UNIVERSAL_CONTROL = "universal_control"
NON_PERSONALISED = "popular"


class UnknownExperimentError(LookupError):
    """The request names an experiment that is not configured."""


@dataclass(frozen=True, slots=True)
class Assignment:
    experiment: str
    arm: str
    policy: str


def unit_hash(salt: str, customer_id: int) -> float:
    """A uniform number in [0, 1) from ``salt`` and the customer id (stable across processes and runs)."""
    digest = hashlib.sha256(f"{salt}:{int(customer_id)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def in_universal_control(customer_id: int, config: ExperimentsConfig) -> bool:
    return unit_hash(config.universal_control_salt, customer_id) < config.universal_control_share


def pick_arm(experiment: Experiment, customer_id: int) -> tuple[str, str]:
    """``(arm name, policy)`` of the customer in ``experiment`` by cumulative weight."""
    u = unit_hash(experiment.salt, customer_id)
    total = sum(a.weight for a in experiment.arms)
    acc = 0.0
    for arm in experiment.arms:
        acc += arm.weight / total
        if u < acc:
            return arm.name, arm.policy
    last = experiment.arms[-1]  # u within rounding of 1.0
    return last.name, last.policy


def assign(customer_id: int, experiment: str | None, config: ExperimentsConfig) -> Assignment:
    """The experiment arm and offer policy of a customer.

    Raises :class:`UnknownExperimentError` for an experiment name that is not configured.
    """
    name = experiment or config.default
    exp = config.definitions.get(name)
    if exp is None:
        known = ", ".join(sorted(config.definitions))
        raise UnknownExperimentError(
            f"unknown experiment {name!r}; configured experiments: {known}"
        )
    if in_universal_control(customer_id, config):
        return Assignment(name, UNIVERSAL_CONTROL, NON_PERSONALISED)
    arm, policy = pick_arm(exp, customer_id)
    return Assignment(name, arm, policy)
