"""Execute the example notebooks with nbval (lax mode: cells must run without error, outputs are not compared).

The notebooks run on a copy of ``example_notebooks/`` in a temporary folder, so no outputs or state land in the
repository. nbval runs in a subprocess with ``cwd`` set to the copy and ``-c /dev/null``, so this repository's
``conftest.py`` (which loads the ``pytest_jupyter`` server fixtures) and ``pyproject.toml`` settings are not
picked up. nbval starts each notebook's kernel in the notebook's own folder, which is what the task notebooks
expect when they run standalone (with ``output_dir = "output"`` and debug task values).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("nbval")

EXAMPLES = Path(__file__).resolve().parent.parent / "example_notebooks"

# pytest runs the notebooks in the order given; the green_energy tasks read the files written upstream, so
# they are listed in DAG order (list_files -> bronze -> silver -> gold_* -> report; check_silver is a condition
# task, no notebook; standalone, bronze loads its default file only).
NOTEBOOKS = [
    "orchestrate_from_a_notebook.ipynb",
    "green_energy/list_files.ipynb",
    "green_energy/bronze.ipynb",
    "green_energy/silver.ipynb",
    "green_energy/gold_country_totals.ipynb",
    "green_energy/gold_source_shares.ipynb",
    "green_energy/report.ipynb",
    # repair_demo/validate.ipynb fails by design without a threshold (threshold is null until the run is
    # repaired with -p threshold=0.5), and publish.ipynb reads the valid.json that validate writes, so only
    # extract runs standalone. The Python API notebook above runs and repairs the whole job.
    "repair_demo/extract.ipynb",
    # charts the history of the state home the API notebook's runs made (found walking up from its folder)
    "history/duration_trends.ipynb",
]


@pytest.mark.kernel
@pytest.mark.timeout(300)
def test_example_notebooks_execute(tmp_path: Path) -> None:
    copy = tmp_path / "example_notebooks"
    shutil.copytree(
        EXAMPLES,
        copy,
        ignore=shutil.ignore_patterns("output", "orchestrate_runs", ".orchestrate", ".ipynb_checkpoints"),
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "-p",
            "no:cacheprovider",
            "-c",
            "/dev/null",
            "--rootdir",
            str(copy),
            "-q",
            "--nbval-cell-timeout",
            "240",
            *(str(copy / nb) for nb in NOTEBOOKS),
        ],
        check=False,
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=280,
        env={
            **{k: v for k, v in os.environ.items() if k != "JUPYTER_ORCHESTRATE_HOME"},
            "PYTHONPATH": str(EXAMPLES.parent),
        },  # the kernels import this checkout's package, not an installed one
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert " passed" in result.stdout, output
    assert "failed" not in result.stdout.splitlines()[-1], output
    # the API notebook recorded its runs in the state home of its workspace (the copy, outside any git
    # repository: its folder), where the CLI and the server find them too, not in the repository
    assert (copy / "orchestrate_runs" / "orchestrate.db").is_file(), sorted(
        str(p) for p in tmp_path.rglob("orchestrate.db")
    )
