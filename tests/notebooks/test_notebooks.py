"""The walkthrough notebooks run top to bottom, make their plots, and are committed clean.

Each notebook is executed with nbclient in a kernel of this interpreter (a kernelspec written
to a temporary directory, so a foreign ``python3`` kernel on the machine is never picked up),
with the repository root as working directory and ``TAILOR_HOME`` in a temporary directory:
MLflow runs, the registry and the event log of the run go there, never to ``./var``.
The notebooks hold their own checks (``assert`` cells: the champion is back after the
rollback, the planted lift is inside the interval); a failing cell fails the test.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NB_DIR = ROOT / "notebooks"
NAMES = ("01-explore-customers", "02-retrain-and-compare", "03-evaluate-a-campaign")
KERNEL = "tailor-notebook-test"
#: Per-cell limit; the three notebooks together take 3-8 minutes here (02 trains churn twice).
CELL_TIMEOUT_S = 600


def _load_maker():
    spec = importlib.util.spec_from_file_location("notebooks_make", NB_DIR / "_make.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# --------------------------------------------------------------------------- committed files


def test_the_three_notebooks_are_there_and_generated_from_make():
    maker = _load_maker()
    assert tuple(maker.NOTEBOOKS) == NAMES
    found = sorted(p.stem for p in NB_DIR.glob("*.ipynb"))
    assert found == list(NAMES)
    for name in NAMES:
        # _make.py is the reviewable source: the committed file must be exactly its output
        assert (NB_DIR / f"{name}.ipynb").read_text(encoding="utf-8") == maker.render(name), (
            f"{name}.ipynb is stale: run `python notebooks/_make.py`"
        )


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_has_no_outputs(name):
    rel = f"notebooks/{name}.ipynb"
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", rel], cwd=ROOT, capture_output=True, text=True
    )
    assert tracked.returncode == 0, f"{rel} is not tracked by git"
    # the version in git (index), not only the working tree
    blob = subprocess.run(
        ["git", "show", f":{rel}"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    for text in (blob, (ROOT / rel).read_text(encoding="utf-8")):
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code, f"{name} has no code cells"
        for cell in code:
            assert cell.outputs == [], f"{name} cell {cell.id} has outputs"
            assert cell.execution_count is None, f"{name} cell {cell.id} has an execution count"
        assert nb.cells[0].cell_type == "markdown", f"{name} must open with its story"


# --------------------------------------------------------------------------- execution


@pytest.fixture(scope="session")
def kernel_env(tmp_path_factory):
    """A kernelspec for this interpreter in a temporary JUPYTER_PATH, plus a clean TAILOR_HOME."""
    from ipykernel.kernelspec import install

    prefix = tmp_path_factory.mktemp("jupyter")
    install(kernel_name=KERNEL, prefix=str(prefix))
    spec = json.loads((prefix / "share/jupyter/kernels" / KERNEL / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable
    home = tmp_path_factory.mktemp("tailor-home")
    saved = dict(os.environ)
    os.environ.update(
        {
            "JUPYTER_PATH": str(prefix / "share/jupyter"),
            "TAILOR_HOME": str(home),
            "BENTOML_DO_NOT_TRACK": "true",
            "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
    )
    for var in (
        "MLFLOW_TRACKING_URI",
        "MPLBACKEND",
        "TAILOR_CONFIG",
        "TAILOR_DATA_DIR",
        "TAILOR_SERVING_DIR",
    ):
        os.environ.pop(var, None)
    yield home
    os.environ.clear()
    os.environ.update(saved)


EXECUTED: dict[str, tuple[nbformat.NotebookNode, float]] = {}


@pytest.fixture(scope="session")
def run_notebook(kernel_env):
    from nbclient import NotebookClient

    def run(name: str) -> nbformat.NotebookNode:
        if name not in EXECUTED:
            nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
            client = NotebookClient(
                nb,
                kernel_name=KERNEL,
                timeout=CELL_TIMEOUT_S,
                resources={"metadata": {"path": str(ROOT)}},
            )
            t0 = time.perf_counter()
            client.execute()  # raises CellExecutionError on the first failing cell
            EXECUTED[name] = (nb, time.perf_counter() - t0)
        return EXECUTED[name][0]

    return run


def _outputs(nb):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def _text(nb) -> str:
    parts = []
    for o in _outputs(nb):
        if o.output_type == "stream":
            parts.append(o.text)
        elif "data" in o and "text/plain" in o.data:
            parts.append(o.data["text/plain"])
    return "\n".join(parts)


def _images(nb) -> int:
    return sum(1 for o in _outputs(nb) if "data" in o and "image/png" in o.data)


@pytest.mark.parametrize(
    ("name", "min_images"),
    [("01-explore-customers", 5), ("02-retrain-and-compare", 1), ("03-evaluate-a-campaign", 3)],
)
def test_notebook_executes_with_inline_plots(run_notebook, name, min_images):
    nb = run_notebook(name)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "every code cell ran"
    errors = [o for o in _outputs(nb) if o.output_type == "error"]
    assert not errors, errors
    assert _images(nb) >= min_images, (
        f"{name}: {_images(nb)} inline images, expected >= {min_images}"
    )
    print(f"{name}: {EXECUTED[name][1]:.1f} s")
