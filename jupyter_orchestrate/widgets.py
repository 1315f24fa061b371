"""RunMonitor: a live ipywidgets view of a run, shown when a :class:`~.api.Run` is displayed in a notebook.

One row per task: status (coloured), a progress bar of code cells done / total, duration and attempts; for a
failure the failing cell and ``ename: evalue`` with a button that shows the traceback. Repair and Cancel
buttons act on the run. A daemon thread refreshes the widgets from the state store every ``interval``
seconds while the run is active, so the notebook's kernel is never blocked.
"""

from __future__ import annotations

import html
import json
import logging
import re
import threading
from typing import Any

import ipywidgets as W

from jupyter_orchestrate.errors import OrchestrateError
from jupyter_orchestrate.models import TaskRun, cell_label, iteration_counts
from jupyter_orchestrate.status_colors import look

log = logging.getLogger(__name__)

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def badge(status: str) -> str:
    """HTML for a coloured status label."""
    color = look(status).color
    return f"<span style='background:{color};color:white;border-radius:8px;padding:0 6px'>{html.escape(status)}</span>"


class TaskRow:
    """The widgets of one task run (kept so refreshes update values instead of rebuilding the tree)."""

    def __init__(self, task_key: str):
        self.task_key = task_key
        self.status = W.HTML()
        self.progress = W.IntProgress(min=0, max=1, value=0, layout=W.Layout(width="120px"))
        self.duration = W.Label()
        self.attempts = W.Label()
        self.failure = W.HTML()
        self.traceback = W.HTML(layout=W.Layout(display="none"))
        self.traceback_button = W.Button(
            description="Show traceback", layout=W.Layout(display="none", width="auto")
        )
        self.traceback_button.on_click(self.toggle_traceback)
        self.box = W.VBox(
            [
                W.HBox(
                    [
                        W.HTML(f"<b>{html.escape(task_key)}</b>", layout=W.Layout(width="180px")),
                        self.status,
                        self.progress,
                        self.duration,
                        self.attempts,
                    ]
                ),
                W.HBox([self.failure, self.traceback_button]),
                self.traceback,
            ]
        )

    def toggle_traceback(self, _: Any = None) -> None:
        shown = self.traceback.layout.display != "none"
        self.traceback.layout.display = "none" if shown else ""
        self.traceback_button.description = "Show traceback" if shown else "Hide traceback"

    def update(self, task_run: TaskRun) -> None:
        status = task_run.status.value
        self.status.value = badge(status)
        shown = (
            task_run  # whose error is shown: the task run's, or a for-each task's first failed iteration's
        )
        where = ""
        if task_run.iterations:  # progress through the iterations
            statuses = [i.status for i in task_run.iterations]
            total, done = len(statuses), sum(s.is_terminal for s in statuses)
            self.attempts.value = f"{iteration_counts(statuses)} iterations"
            failed = [i for i in task_run.iterations if i.status.is_failure]
            if failed:
                shown = failed[0]
                where = f"{shown.task_key} {json.dumps(shown.input)[:60]}: "
        else:
            last = task_run.last_attempt
            total = (last.cells_total if last else None) or 0
            done = (last.cells_completed if last else None) or 0
            if status == "succeeded" and total:
                done = total
            self.attempts.value = f"{len(task_run.attempts)} attempt(s)"
        self.progress.max = max(total, 1)
        self.progress.value = min(done, self.progress.max)
        self.progress.bar_style = look(status).bar
        self.duration.value = (
            f"{task_run.duration_seconds:.1f} s" if task_run.duration_seconds is not None else ""
        )
        last = shown.last_attempt
        error = last.error if last else None
        if error is not None and shown.status.is_failure:
            cell = (
                f"{cell_label(error.cell_index)}: "
                if error.cell_index is not None or error.executed_cell_index is not None
                else ""
            )
            text = f"{where}{cell}{error.ename}: {error.evalue}"
            self.failure.value = f"<span style='color:#c62828'>{html.escape(text)}</span>"
            self.traceback.value = "<pre>" + html.escape(ANSI.sub("", "\n".join(error.traceback))) + "</pre>"
            self.traceback_button.layout.display = "" if error.traceback else "none"
        else:
            self.failure.value = (
                html.escape(task_run.status_reason or "")
                if task_run.status.is_failure or status == "skipped"
                else ""
            )
            self.traceback_button.layout.display = "none"
            self.traceback.layout.display = "none"


class RunMonitor(W.VBox):  # type: ignore[misc]  # ipywidgets has no type hints
    """The live monitor of ``run`` (a :class:`~.api.Run`); ``interval`` is the refresh period in seconds."""

    def __init__(self, run: Any, interval: float = 0.5, live: bool = True):
        self.run = run
        self.interval = interval
        self.header = W.HTML()
        self.message = W.HTML()
        self.repair_button = W.Button(description="Repair", icon="wrench", button_style="warning")
        self.cancel_button = W.Button(description="Cancel", icon="stop", button_style="danger")
        # "Resume from cell N": shown while a failed task's kernel is kept (run --keep-failed-kernels)
        self.resume_button = W.Button(description="Resume", icon="play", button_style="success")
        self.resume_button.layout.display = "none"
        self.resume_button.on_click(self.on_resume)
        self.repair_button.on_click(self.on_repair)
        self.cancel_button.on_click(self.on_cancel)
        self.rows: dict[str, TaskRow] = {}
        self.rows_box = W.VBox()
        super().__init__(
            [
                W.HBox([self.header, self.resume_button, self.repair_button, self.cancel_button]),
                self.rows_box,
                self.message,
            ]
        )
        self._stop = threading.Event()
        self.refresh()
        if live:
            threading.Thread(target=self._poll, name=f"monitor-run-{run.run_id}", daemon=True).start()

    def refresh(self) -> None:
        """Read the run from the store and update every widget."""
        model = self.run.model
        self.header.value = (
            f"<b>Run {model.run_id}</b> of <b>{html.escape(model.job_name)}</b> {badge(model.status.value)}"
            + (f" {model.duration_seconds:.1f} s" if model.duration_seconds is not None else "")
            + (f", {model.repair_count} repair(s)" if model.repair_count else "")
        )
        for task_run in model.task_runs:
            if task_run.task_key not in self.rows:
                self.rows[task_run.task_key] = TaskRow(task_run.task_key)
            self.rows[task_run.task_key].update(task_run)
        self.rows_box.children = tuple(self.rows[t.task_key].box for t in model.task_runs)
        active = not model.status.is_terminal
        self.cancel_button.disabled = not active
        self.repair_button.disabled = active or not any(t.status.is_failure for t in model.task_runs)
        kept = [t.kept_kernel for t in model.task_runs if t.kept_kernel is not None and t.status.is_failure]
        self.resume_button.layout.display = "" if kept and not active else "none"
        if kept:
            first = kept[0]
            cell = cell_label(first.cell_index)
            self.resume_button.description = (
                f"Resume from {cell}" if len(kept) == 1 else f"Resume {len(kept)} tasks"
            )
            self.resume_button.tooltip = "; ".join(
                f"{k.task_key}: from {cell_label(k.cell_index)} in its kept kernel (until {k.expires_time[11:19]} UTC)"
                for k in kept
            )

    def _poll(self) -> None:
        idle = 0
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
            except Exception as exc:  # a store hiccup must not kill the monitor
                log.warning("run %s: cannot refresh the monitor", self.run.run_id, exc_info=True)
                self.message.value = html.escape(f"cannot refresh: {exc}")
            idle = idle + 1 if self.run.model.status.is_terminal else 0
            if idle > 4:  # finished: a few more refreshes, then stop polling
                return

    def on_repair(self, _: Any = None) -> None:
        """Repair the run (unsuccessful tasks and their downstream) and keep watching it."""
        self._start(self.run.repair, "repair started")

    def on_resume(self, _: Any = None) -> None:
        """Resume the failed tasks from their failed cells in their kept kernels and keep watching the run."""
        self._start(self.run.resume, "resume started")

    def _start(self, action: Any, started: str) -> None:
        try:
            action()
            self.message.value = started
            threading.Thread(target=self._poll, name=f"monitor-run-{self.run.run_id}", daemon=True).start()
        except OrchestrateError as exc:  # shown to the user, e.g. "nothing to repair", "the kernel is gone"
            self.message.value = f"<span style='color:#c62828'>{html.escape(str(exc))}</span>"
        self.refresh()

    def on_cancel(self, _: Any = None) -> None:
        """Cancel the run."""
        self.message.value = "cancel requested" if self.run.cancel() else "the run had already finished"
        self.refresh()

    def close(self) -> None:
        """Stop refreshing and close the widgets."""
        self._stop.set()
        super().close()
