"""Output without limits: a per-attempt cap on executed-notebook output, and no cell output echoed into the log.

Real kernels and papermill: a notebook prints 20 MB under a 1 MB cap (JUPYTER_ORCHESTRATE_MAX_OUTPUT_BYTES). The
executed notebook stays under 2 MB and says it was truncated, the attempt log holds none of the printed lines,
the task succeeds (truncating output is not the notebook's failure), and the worker's memory does not grow with
what was printed. A cell that fails after the cap still reports its error.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from jupyter_orchestrate.errors import ValidationError
from jupyter_orchestrate.executors.base import MAX_OUTPUT_BYTES_ENV
from jupyter_orchestrate.service import OrchestrateService
from tests.conftest import write_notebook

CAP = 1_000_000
PRINT_20_MB = """\
line = "x" * 88
for i in range(200_000):
    print(f"line {i:07d} {line}")  # 101 bytes a line: 20.2 MB
"""


class PeakRss:
    """Resident memory of the attempt workers of a run: at the start of their first cell (papermill, nbclient and
    the kernel client running) and at their peak, sampled every 20 ms until stopped."""

    def __init__(self) -> None:
        self.runner: Any = None
        self.baseline: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)

    def rss(self, key: str) -> int | None:
        flight = self.runner.in_flight.get(key)
        try:
            return psutil.Process(flight.handle.worker_pid).memory_info().rss
        except (psutil.Error, AttributeError):
            return None

    def on_event(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "progress" and payload["cell"] == 1 and (rss := self.rss(payload["task_key"])) is not None:
            self.baseline.setdefault(payload["task_key"], rss)

    def sample(self) -> None:
        while not self.done.is_set():
            for key in list(self.baseline):
                rss = self.rss(key)
                if rss is not None:
                    self.peak[key] = max(self.peak.get(key, 0), rss)
            time.sleep(0.02)

    def growth(self) -> dict[str, int]:
        return {key: self.peak[key] - self.baseline[key] for key in self.peak}


@pytest.mark.kernel
def test_output_over_the_cap_is_truncated_with_a_note_and_bounded_memory(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MAX_OUTPUT_BYTES_ENV, str(CAP))
    job = tmp_path / "loud"
    write_notebook(
        job / "loud.ipynb", "print('first line')", PRINT_20_MB, "print('after', 'the loop')", orchestrate={}
    )
    write_notebook(
        job / "loud_then_fails.ipynb", PRINT_20_MB, "raise ValueError('failed after the cap')", orchestrate={}
    )
    service = OrchestrateService(home)
    memory = PeakRss()
    runner = memory.runner = service.new_run(job, max_parallel=2, on_event=memory.on_event)
    memory.thread.start()
    try:
        runner.execute()
    finally:
        memory.done.set()
        memory.thread.join()
    run = service.get_run(runner.run_id)

    loud = run.task_run("loud")
    assert loud.status.value == "succeeded", loud.status_reason
    attempt = loud.attempts[-1]
    notebook = Path(attempt.notebook_path)
    assert notebook.stat().st_size < 2_000_000, notebook.stat().st_size
    text = notebook.read_text(encoding="utf-8")
    assert (
        f"[output truncated: this attempt's outputs exceeded {CAP:,} bytes ({MAX_OUTPUT_BYTES_ENV})" in text
    )
    assert "first line" in text and "line 0000000 x" in text  # output up to the cap is kept
    assert "line 0199999" not in text and "after the loop" not in text
    assert attempt.cells_completed == attempt.cells_total == 3
    log = Path(attempt.log_path).read_text(encoding="utf-8")
    assert "line 00" not in log and "first line" not in log, log[:500]
    assert Path(attempt.log_path).stat().st_size < 100_000

    failed = run.task_run("loud_then_fails")
    assert failed.status.value == "failed"
    error = failed.attempts[-1].error
    assert (error.ename, error.evalue) == ("ValueError", "failed after the cap")
    assert "[output truncated" in Path(failed.attempts[-1].notebook_path).read_text(encoding="utf-8")
    assert Path(failed.attempts[-1].notebook_path).stat().st_size < 2_000_000

    # 20 MB went through each worker; what it holds is bounded by the cap, plus allocator slack and the
    # kernel's stdout batches queued in its socket: 26-35 MB on idle cores, 42 MB once on busy ones (the batches
    # grow when the worker is starved); a worker that kept the output grew by 120 MB here
    assert set(memory.peak) == {"loud", "loud_then_fails"}, "a worker was not sampled"
    assert max(memory.growth().values()) < 60_000_000, memory.growth()


def test_a_bad_cap_is_refused_before_anything_is_recorded(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MAX_OUTPUT_BYTES_ENV, "50MB")
    write_notebook(tmp_path / "job" / "a.ipynb", "1", orchestrate={})
    service = OrchestrateService(home)
    with pytest.raises(ValidationError) as info:
        service.new_run(tmp_path / "job")
    assert MAX_OUTPUT_BYTES_ENV in str(info.value) and "'50MB'" in str(info.value)
    assert service.list_runs() == []


@pytest.mark.kernel
def test_display_updates_count_against_the_cap(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``update_display_data`` replaces a display's content in place: 5 MB through one was kept whole."""
    monkeypatch.setenv(MAX_OUTPUT_BYTES_ENV, str(CAP))
    job = tmp_path / "updates"
    write_notebook(
        job / "updates.ipynb",
        "h = display('small', display_id=True)\nh.update('y' * 5_000_000)",
        orchestrate={},
    )
    service = OrchestrateService(home)
    runner = service.new_run(job)
    runner.execute()
    attempt = service.get_run(runner.run_id).task_run("updates").attempts[-1]
    notebook = Path(attempt.notebook_path)
    assert notebook.stat().st_size < 2_000_000, notebook.stat().st_size
    assert "[output truncated:" in notebook.read_text(encoding="utf-8")
