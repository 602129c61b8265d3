"""MLflow helpers: tracking, the model registry and the ``champion`` alias (../shared/STYLE.md #9).

All MLflow calls of the project live here. Default store: a local SQLite database plus a
local artifact folder under the settings' home; ``MLFLOW_TRACKING_URI`` points elsewhere.

Registry rules
--------------
* One registered model per family: ``tailor-<family>`` (``tailor-next-purchase`` ...).
* Serving loads the version behind the alias ``champion``, never "latest".
* :func:`promote_if_better` moves the alias only when the new version beats the current
  champion on the family's validation metric (``force=True`` overrides); the previous
  champions are kept in the registered model's tag ``champion_history``.
* :func:`rollback` moves the alias back to the previous champion.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, is_dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from features.config import get_settings

logger = logging.getLogger(__name__)


def _not_the_cloudpickle_note(record: logging.LogRecord) -> bool:
    """MLflow warns on every ``log_model`` of a Python object that it is cloudpickled. Our
    models are pickled by design (``FamilyModel``) and loaded only from the project's own
    registry, so the note is dropped; every other MLflow warning still shows."""
    return "serialized using CloudPickle" not in record.getMessage()


logging.getLogger("mlflow.pyfunc").addFilter(_not_the_cloudpickle_note)

ALIAS = "champion"
HISTORY_TAG = "champion_history"
FAMILIES = ("next_purchase", "cross_sell", "churn", "value")


class NoChampionError(LookupError):
    """No version of a family's registered model carries the ``champion`` alias."""


def model_name(family: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; expected one of {', '.join(FAMILIES)}")
    return "tailor-" + family.replace("_", "-")


def configure() -> str:
    """Point MLflow at the configured store (creating the local folders) and return its URI."""
    s = get_settings()
    uri = s.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        s.mlflow_artifact_root.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def client() -> MlflowClient:
    uri = configure()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(name: str) -> str:
    """Get or create an experiment whose artifacts go to the local artifact folder."""
    c = client()
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    s = get_settings()
    location = None
    if s.mlflow_tracking_uri.startswith("sqlite:"):
        location = (s.mlflow_artifact_root / name).as_uri()
    return c.create_experiment(name, artifact_location=location)


def data_fingerprint(tables) -> str:
    """A short hash of the content of every table of the training data, logged with each run."""
    return tables.fingerprint(16)


def validation_split(tables, cutoff, end) -> str:
    """``<cutoff>/<hash>``: the validation cutoff and a hash of what a validation reads,
    the data known before ``end`` (the end of its label window): transactions, redemptions
    and campaigns before it, campaign targets and coupons of those campaigns, and the
    products and customers that appear in those transactions. Two versions' validation
    values are comparable only when these agree: data added later (a weekly refresh, with its
    new customers and products) keeps the split; another source or an edited past does not."""
    end = pd.Timestamp(end)
    t = tables.before(end)
    tx = t.transactions
    if t.campaigns is not None:
        t.campaigns = t.campaigns[t.campaigns["start_date"] < end]
        known = t.campaigns["campaign_id"]
        for name in ("campaign_targets", "coupons"):
            df = getattr(t, name)
            if df is not None:
                setattr(t, name, df[df["campaign_id"].isin(known)])
    if t.products is not None:
        t.products = t.products[t.products["product_id"].isin(tx["product_id"])]
    if t.customers is not None:
        t.customers = t.customers[t.customers["customer_id"].isin(tx["customer_id"])]
    return f"{pd.Timestamp(cutoff).date()}/{t.fingerprint(12)}"


def _flat_params(config) -> dict[str, str]:
    raw = asdict(config) if is_dataclass(config) else dict(config or {})
    out = {}
    for k, v in raw.items():
        if isinstance(v, dict):
            for k2, v2 in v.items():
                out[f"{k}.{k2}"] = str(v2)[:500]
        else:
            out[k] = str(v)[:500]
    return out


class FamilyModel(mlflow.pyfunc.PythonModel):
    """The pyfunc wrapper logged for each family.

    Holds the fitted family object (``model``) and its predictions as of the training
    cutoff (``predictions``). ``predict`` takes a frame with ``customer_id`` and returns those
    customers' prediction rows; serving unwraps ``model`` to predict as of later dates.
    """

    def __init__(self, family: str, model, predictions: pd.DataFrame, cutoff: str):
        self.family = family
        self.model = model
        self.predictions = predictions
        self.cutoff = cutoff

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:  # noqa: ARG002
        if "customer_id" not in model_input:
            raise ValueError("model input needs a customer_id column")
        ids = pd.Index(model_input["customer_id"].astype("int64"))
        return self.predictions[self.predictions["customer_id"].isin(ids)].reset_index(drop=True)


def log_family_run(
    family: str,
    model,
    predictions: pd.DataFrame,
    *,
    cutoff,
    config,
    evaluation: pd.DataFrame | None,
    validation_metric: str,
    validation_value: float,
    feature_names: list[str] | None,
    fingerprint: str,
    validation_split: str | None = None,
    figures: dict | None = None,
    run_name: str | None = None,
    register: bool = True,
) -> tuple[str, str | None]:
    """Log one training run of a family (params, metrics next to baselines, features, plots, model).

    Returns ``(run_id, registered_version or None)``.
    """
    from mlflow.models import infer_signature

    exp = experiment_id(f"tailor-{family}")
    with mlflow.start_run(
        experiment_id=exp, run_name=run_name or f"{family}-{pd.Timestamp(cutoff).date()}"
    ) as run:
        mlflow.log_params(
            _flat_params(config) | {"cutoff": str(pd.Timestamp(cutoff).date()), "family": family}
        )
        mlflow.set_tags({"data_fingerprint": fingerprint, "validation_metric": validation_metric})
        if validation_split is not None:
            mlflow.set_tag("validation_split", validation_split)
        mlflow.log_metric(f"val_{validation_metric.replace('@', '_at_')}", float(validation_value))
        if evaluation is not None and len(evaluation):
            log_evaluation(evaluation)
        if feature_names:
            mlflow.log_text("\n".join(feature_names), "features.txt")
        for name, fig in (figures or {}).items():
            mlflow.log_figure(fig, f"plots/{name}.png")
        sample_in = pd.DataFrame(
            {"customer_id": predictions["customer_id"].drop_duplicates().head(5).astype("int64")}
        )
        wrapper = FamilyModel(family, model, predictions, str(pd.Timestamp(cutoff)))
        sample_out = wrapper.predict(None, sample_in)
        signature = infer_signature(sample_in, _json_safe(sample_out))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=wrapper,
            signature=signature,
            input_example=sample_in,
            pip_requirements=[],
        )
        version = None
        if register:
            mv = mlflow.register_model(
                info.model_uri, model_name(family), await_registration_for=60
            )
            version = str(mv.version)
            c = client()
            c.set_model_version_tag(
                model_name(family), version, "validation_metric", validation_metric
            )
            c.set_model_version_tag(
                model_name(family), version, "validation_value", repr(float(validation_value))
            )
            c.set_model_version_tag(model_name(family), version, "data_fingerprint", fingerprint)
            if validation_split is not None:
                c.set_model_version_tag(
                    model_name(family), version, "validation_split", validation_split
                )
            c.set_model_version_tag(
                model_name(family), version, "cutoff", str(pd.Timestamp(cutoff).date())
            )
        return run.info.run_id, version


def _json_safe(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object:
            out[c] = out[c].map(
                lambda v: json.dumps(v) if isinstance(v, list | dict | tuple | np.ndarray) else v
            )
    return out


def log_evaluation(evaluation: pd.DataFrame) -> None:
    """Log a long evaluation table (family, model, cutoff, metric, value) as metrics + a CSV artifact."""
    for row in evaluation.itertuples(index=False):
        key = f"{row.model}.{row.metric}.{pd.Timestamp(row.cutoff).date()}".replace("@", "_at_")
        mlflow.log_metric(key, float(row.value))
    means = evaluation.groupby(["model", "metric"])["value"].mean()
    for (m, metric), v in means.items():
        mlflow.log_metric(f"{m}.{metric}.mean".replace("@", "_at_"), float(v))
    from training.goals import goal_table, goals_figure

    goals = goal_table(evaluation)
    for family in sorted(set(goals["family"])):
        fig = goals_figure(evaluation, family)
        if fig is not None:
            mlflow.log_figure(fig, f"plots/goals_{family}.png")
    for g in goals.itertuples(index=False):
        key = f"goal.{g.family}.{g.metric}".replace("@", "_at_")
        mlflow.log_metric(f"{key}.result", float(g.result))
        mlflow.log_metric(f"{key}.met", float(g.met))
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "evaluation.csv"
        evaluation.to_csv(p, index=False)
        mlflow.log_artifact(str(p))
        if not goals.empty:
            p = Path(d) / "goals.csv"
            goals.to_csv(p, index=False)
            mlflow.log_artifact(str(p))


# --------------------------------------------------------------------------- registry


def _validation(c: MlflowClient, name: str, version: str) -> tuple[float | None, str | None]:
    """The version's validation value (None when it has none or it is NaN) and split tag."""
    tags = c.get_model_version(name, version).tags
    value = float(tags.get("validation_value", "nan"))
    return (value if np.isfinite(value) else None), tags.get("validation_split")


def current_champion(family: str) -> str | None:
    c = client()
    try:
        return str(c.get_model_version_by_alias(model_name(family), ALIAS).version)
    except MlflowException:
        return None


def _history(c: MlflowClient, name: str) -> list[str]:
    rm = c.get_registered_model(name)
    raw = rm.tags.get(HISTORY_TAG, "")
    return [v for v in raw.split(",") if v]


def promote_if_better(
    family: str, version: str, greater_is_better: bool = True, force: bool = False
) -> tuple[bool, str]:
    """Move ``champion`` to ``version`` if it beats the current champion's validation value.

    Without ``force``:

    * a version without a valid (finite) validation value is never promoted;
    * it is compared with the champion only when both were validated on the same split
      (tag ``validation_split``: cutoff and data, see :func:`validation_split`); when the
      splits differ, or either is not recorded, the values are not comparable and the
      champion is kept (the reason says so; ``force`` promotes);
    * a champion without a valid value can be replaced by any valid version.

    Returns ``(promoted, reason)``. Raises :class:`mlflow.exceptions.MlflowException` for
    an unknown version.
    """
    c = client()
    name = model_name(family)
    version = str(version)
    new, split_new = _validation(c, name, version)
    cur = current_champion(family)
    if cur == version:
        return False, f"version {version} is already the champion"
    why = "first champion" if cur is None else f"beats v{cur}"
    if force:
        why = "forced" if cur is not None else why
    elif new is None:
        kept = f"champion v{cur} kept" if cur is not None else "no champion set"
        return False, f"v{version} has no valid validation value; {kept}"
    elif cur is not None:
        old, split_old = _validation(c, name, cur)
        if old is None:
            why = f"champion v{cur} has no valid validation value"
        elif split_new is None or split_old is None or split_new != split_old:
            return (
                False,
                f"v{version} cannot be compared with champion v{cur}: validated on "
                f"{split_new or 'an unrecorded split'}, the champion on "
                f"{split_old or 'an unrecorded split'} (another cutoff or other data); "
                "champion kept (--force promotes it)",
            )
        elif not (new > old if greater_is_better else new < old):
            return (
                False,
                f"v{version} ({new:.4f}) does not beat champion v{cur} ({old:.4f}); champion kept",
            )
    hist = _history(c, name)
    if cur is not None:
        hist.append(cur)
    # the alias first: if it fails, the history does not claim a change that did not happen
    c.set_registered_model_alias(name, ALIAS, version)
    c.set_registered_model_tag(name, HISTORY_TAG, ",".join(hist))
    logger.info("%s: champion -> v%s (%s)", name, version, why)
    return True, f"champion -> v{version} ({why})"


def rollback(family: str) -> str:
    """Move ``champion`` back to the previous champion; returns the version now serving."""
    c = client()
    name = model_name(family)
    hist = _history(c, name)
    prev = None
    while hist and prev is None:
        prev = hist.pop()
        try:
            c.get_model_version(name, prev)
        except MlflowException:  # deleted since: the one before it
            logger.warning("%s: previous champion v%s no longer exists; skipped", name, prev)
            prev = None
    if prev is None:
        raise NoChampionError(f"{name}: no previous champion to roll back to")
    c.set_registered_model_alias(name, ALIAS, prev)
    c.set_registered_model_tag(name, HISTORY_TAG, ",".join(hist))
    logger.info("%s: rolled back champion -> v%s", name, prev)
    return prev


def load_champion(family: str):
    """Return ``(family object, version)`` of the champion; raise :class:`NoChampionError` if none."""
    name = model_name(family)
    version = current_champion(family)
    if version is None:
        raise NoChampionError(
            f"no '{ALIAS}' version registered for {name}; run `tailor train {family}`"
        )
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    wrapper = pyfunc.unwrap_python_model()
    return wrapper.model, version


def load_champion_wrapper(family: str) -> tuple[FamilyModel, str]:
    """Like :func:`load_champion` but returns the whole wrapper (model, predictions, cutoff)."""
    name = model_name(family)
    version = current_champion(family)
    if version is None:
        raise NoChampionError(
            f"no '{ALIAS}' version registered for {name}; run `tailor train {family}`"
        )
    return mlflow.pyfunc.load_model(f"models:/{name}/{version}").unwrap_python_model(), version


def champion_versions() -> dict[str, str | None]:
    return {f: current_champion(f) for f in FAMILIES}


def list_versions(family: str) -> pd.DataFrame:
    c = client()
    name = model_name(family)
    champ = current_champion(family)
    rows = []
    for mv in c.search_model_versions(f"name='{name}'"):
        rows.append(
            {
                "version": int(mv.version),
                "validation_metric": mv.tags.get("validation_metric"),
                "validation_value": float(mv.tags["validation_value"])
                if "validation_value" in mv.tags
                else None,
                "cutoff": mv.tags.get("cutoff"),
                "champion": str(mv.version) == champ,
                "run_id": mv.run_id,
            }
        )
    return pd.DataFrame(rows).sort_values("version") if rows else pd.DataFrame(columns=["version"])
