"""The kernels a run needs first, launched before the run is recorded (issue 15's time to first task start).

Only models and the executor interface are imported here, not the store or the runner (~0.2 s of imports), so
the CLI can call :func:`prelaunch_kernels` right after discovery and the kernels boot while the rest loads.
:func:`kernel_place` is also the runner's rule for where an attempt's kernel runs.
"""

from __future__ import annotations

from pathlib import Path

from jupyter_orchestrate.errors import OrchestrateError
from jupyter_orchestrate.executors.base import TaskExecutor
from jupyter_orchestrate.models import Job, Task


def kernel_place(job: Job, task: Task) -> tuple[str, dict[str, str]]:
    """Where an attempt of ``task`` runs its kernel: ``(working directory, the task's variables expanded)``.
    The folder is ``environment.cwd`` (relative to the job) or the notebook's; a variable that cannot be
    expanded keeps its raw text (validation reported it)."""
    from jupyter_orchestrate.environments import expand_env

    job_root = Path(job.path)
    environment = task.environment
    cwd = job_root / environment.cwd if environment.cwd else (job_root / (task.notebook or ".")).parent
    try:
        env = expand_env(environment.env)
    except OrchestrateError:
        env = dict(environment.env)
    return str(cwd), env


def prelaunch_kernels(job: Job, executor: TaskExecutor, count: int, marker: str) -> None:
    """Ask ``executor`` to launch the kernels of the first ``count`` tasks without dependencies now, before
    their run is recorded (the CLI calls it right after discovery: the kernels boot while the store is opened
    and the run recorded). Tasks on an interpreter or a requirements environment are left out; so is every
    task with ``keep_failed_kernels_seconds`` (its kernel may have to outlive this process). ``marker``: the
    context variable's value until an attempt takes a kernel (:meth:`TaskExecutor.prelaunch`)."""
    places: dict[tuple[str, str, tuple[tuple[str, str], ...]], int] = {}
    for task in [t for t in job.tasks if not t.depends_on][: max(count, 0)]:
        environment = task.environment
        if environment.python or environment.requirements or environment.requirements_file:
            continue
        if task.keep_failed_kernels_seconds or not task.runs_kernel:
            continue
        cwd, env = kernel_place(job, task)
        place = (task.kernel_name, cwd, tuple(sorted(env.items())))
        places[place] = places.get(place, 0) + 1
    for (kernel_name, cwd, env_items), n in places.items():
        executor.prelaunch(kernel_name, cwd, dict(env_items), marker, n)
