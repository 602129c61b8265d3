"""The `tailor` command line: one entry point for data scientists, marketing ops and analysts.

Sub-commands live next to the code they drive (``features/cli.py``, ``campaigns/cli.py``,
``serving/cli.py``, ``training/commands.py``); this module only assembles them and sets up
logging, which entry points alone are allowed to do.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import warnings

import typer

from features.cli import NOISY_LOGGERS, data_app, features_app

app = typer.Typer(
    name="tailor",
    help="Tailor: one-to-one marketing engine (features, models, offers, campaigns).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(data_app, name="data")
app.add_typer(features_app, name="features")


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


if _has("training.commands"):
    from training import commands as _training_commands

    app.command("train")(_training_commands.train)
    app.command("evaluate")(_training_commands.evaluate)
    app.command("predict")(_training_commands.predict)
    app.add_typer(_training_commands.models_app, name="models")
    app.command("run")(_training_commands.run)

if _has("campaigns.cli"):
    from campaigns.cli import app as _campaign_app

    app.add_typer(_campaign_app, name="campaign", help="Design and analyse A/B campaigns.")

if _has("serving.cli"):
    from serving import cli as _serving_cli

    for _name in ("serve", "lists", "forget"):
        if hasattr(_serving_cli, _name):
            app.command(_name)(getattr(_serving_cli, _name))


@app.callback()
def _setup(verbose: bool = typer.Option(False, "--verbose", "-v", help="debug logging")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not verbose:  # known, harmless library chatter that would bury the progress lines
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        # MLflow sets its own loggers' level from this when it is imported (INFO otherwise)
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    from features.config import SettingsError, get_settings

    try:  # a broken settings file is a message, before any command runs
        get_settings()
    except SettingsError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(2) from exc


def main() -> None:
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    app()


if __name__ == "__main__":
    main()
