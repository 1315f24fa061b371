"""The Python API (Job, Run) and the ipywidgets monitor, with real kernels."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from jupyter_orchestrate import Job, Run
from jupyter_orchestrate.errors import ConflictError, ValidationError
from jupyter_orchestrate.widgets import RunMonitor
from tests.conftest import EXAMPLES, GREEN_ENERGY_TASKS

pytestmark = pytest.mark.kernel


def copy(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(EXAMPLES / name, tmp_path / name, ignore=shutil.ignore_patterns("output")))


def test_run_wait_dataframe_and_monitor_of_a_successful_run(tmp_path: Path, home: Path) -> None:
    job = Job.load(copy("green_energy", tmp_path), home=home)
    assert job.validate() == [] and job.name == "green_energy"
    assert "bronze -> silver" in job.dag_text() and "countries" in job._repr_html_()
    run = job.run(parameters={"countries": "NL,DE"}, wait=False)
    assert run.status in ("queued", "running")
    assert run.wait(timeout=120) == "succeeded"
    frame = run.to_dataframe()
    assert list(frame["task_key"]) == GREEN_ENERGY_TASKS
    assert set(frame["status"]) == {"succeeded"}
    bronze_rows = frame.loc[1, "task_values"]["rows"]  # bronze: one iteration per file of NL and DE
    assert len(bronze_rows) == 2 and all(rows > 0 for rows in bronze_rows)
    assert [r.run_id for r in Run.list("green_energy", home=home)] == [run.run_id]
    assert Run.get(run.run_id, home=home).status == "succeeded"

    monitor = RunMonitor(run, live=False)
    assert len(monitor.rows_box.children) == 7
    assert monitor.rows["bronze"].attempts.value == "2/2 iterations", (
        "the for-each task counts its iterations"
    )
    row = monitor.rows["silver"]
    assert "succeeded" in row.status.value and row.progress.value == row.progress.max > 1
    assert row.progress.bar_style == "success" and row.traceback_button.layout.display == "none"
    assert monitor.repair_button.disabled and monitor.cancel_button.disabled


def test_monitor_of_a_failed_run_and_repair_from_its_button(tmp_path: Path, home: Path) -> None:
    job = Job.load(copy("repair_demo", tmp_path), home=home)
    run = job.run()
    assert run.status == "failed"
    monitor = RunMonitor(run, live=False)
    row = monitor.rows["validate"]
    assert "failed" in row.status.value and row.progress.bar_style == "danger"
    assert "ValueError: threshold is not set" in row.failure.value and "cell 4" in row.failure.value
    assert row.traceback.layout.display == "none" and row.traceback_button.layout.display == ""
    row.traceback_button.click()
    assert (
        row.traceback.layout.display == ""
        and "ValueError" in row.traceback.value
        and "\x1b[" not in row.traceback.value
    )
    assert "upstream_failed" in monitor.rows["publish"].status.value
    assert not monitor.repair_button.disabled

    # the button repairs (the notebook is fixed on disk first, as a user would)
    validate = tmp_path / "repair_demo" / "validate.ipynb"
    validate.write_text(validate.read_text().replace("threshold = None", "threshold = 0.5"))
    (tmp_path / "repair_demo" / "job.yaml").write_text(
        'name: repair_demo\nparameters:\n  output_dir: "output/run-{{job.run_id}}"\n'
    )
    monitor.repair_button.click()
    assert run.wait(timeout=120) == "succeeded", monitor.message.value
    assert {t.task_key: len(t.attempts) for t in run.task_runs} == {"extract": 1, "validate": 2, "publish": 1}
    monitor.refresh()
    assert "succeeded" in monitor.rows["validate"].status.value and monitor.repair_button.disabled
    with pytest.raises(ConflictError):
        run.repair()


def test_cancel_and_invalid_jobs(make_notebook: Any, tmp_path: Path, home: Path) -> None:
    make_notebook("slow/nap.ipynb", "import time\ntime.sleep(60)", orchestrate={})
    run = Job.load(tmp_path / "slow", home=home).run(wait=False)
    deadline = time.monotonic() + 60
    while run.task_runs[0].status.value != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert run.cancel() is True
    assert run.wait(timeout=30) == "canceled" and run.cancel() is False
    make_notebook("cyclic/a.ipynb", "1", orchestrate={"depends_on": ["b"]})
    make_notebook("cyclic/b.ipynb", "1", orchestrate={"depends_on": ["a"]})
    with pytest.raises(ValidationError, match=r"a -> b -> a|b -> a -> b"):
        Job.load(tmp_path / "cyclic", home=home)
