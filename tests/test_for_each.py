"""For-each tasks (Databricks For each, Airflow's dynamic task mapping): the engine's expansion and aggregate
status, validation before the run, the runner without kernels (MemoryExecutor, real SQLite: inputs from a task
value, values as lists, repair of failed iterations only) and the CLI with real kernels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest

from jupyter_orchestrate.discovery import validate_job
from jupyter_orchestrate.engine.active_run import ActiveRun, TaskState
from jupyter_orchestrate.executors.memory import MemoryExecutor, fail, succeed
from jupyter_orchestrate.models import ForEach, RunStatus, Task, TaskRunStatus, iteration_counts
from jupyter_orchestrate.service import OrchestrateService
from tests.conftest import cli, write_notebook
from tests.test_active_run import run_to
from tests.test_e2e import kernels_of, wait_for
from tests.test_resume_e2e import keepers_of

S = TaskRunStatus


# -- the engine ------------------------------------------------------------------------------------------------


def fan_out(concurrency: int = 2, **load: Any) -> dict[str, Task]:
    """list_files -> load (for each file) -> total, and an independent side task."""
    tasks = [
        Task(task_key="list_files", notebook="l.ipynb"),
        Task(
            task_key="load",
            notebook="load.ipynb",
            depends_on=["list_files"],
            for_each=ForEach(inputs="{{tasks.list_files.values.files}}", concurrency=concurrency),
            **load,
        ),
        Task(task_key="total", notebook="t.ipynb", depends_on=["load"]),
        Task(task_key="side", notebook="s.ipynb"),
    ]
    return {t.task_key: t for t in tasks}


def expanded(inputs: list[Any], max_parallel: int = 10, **kwargs: Any) -> ActiveRun:
    tasks = fan_out(**kwargs)
    run = ActiveRun(tasks, {k: TaskState(S.pending) for k in tasks}, max_parallel)
    for key in ("list_files", "side"):
        run_to(run, key, S.succeeded)
    assert run.launchable(0.0) == ["load"]
    changes = run.expand("load", inputs, {})
    assert changes[0].task_key == "load"
    return run


def finish_all(run: ActiveRun, outcomes: dict[str, TaskRunStatus]) -> None:
    while not all(run.status(k).is_terminal for k in run.iterations["load"]):
        for key in run.launchable(0.0):
            run.start(key)
            run.finish(key, outcomes.get(key, S.succeeded), 0.0)
        run.advance()


def test_expansion_runs_at_most_concurrency_iterations_lowest_map_index_first() -> None:
    run = expanded(["a", "b", "c", "d", "e"], concurrency=2)
    assert run.status("load") == S.running
    assert run.iterations["load"] == [f"load[{i}]" for i in range(5)]
    assert run.launchable(0.0) == ["load[0]", "load[1]"]
    run.start("load[0]")
    run.start("load[1]")
    assert run.launchable(0.0) == [], "concurrency 2 is reached"
    run.finish("load[1]", S.succeeded, 0.0)
    assert run.launchable(0.0) == ["load[2]"]


def test_iterations_share_max_parallel_and_the_expanded_task_takes_no_slot() -> None:
    run = expanded(["a", "b", "c"], max_parallel=2, concurrency=10)
    assert run.launchable(0.0) == ["load[0]", "load[1]"], "the running for-each task itself is no attempt"


def test_all_iterations_succeeded_makes_the_task_succeed_and_its_dependents_run() -> None:
    run = expanded(["a", "b", "c"])
    finish_all(run, {})
    assert run.status("load") == S.succeeded
    assert run.states["load"].reason == "for_each: 3/3 succeeded"
    assert run.launchable(0.0) == ["total"]


def test_one_failed_iteration_fails_the_task_after_all_have_run() -> None:
    run = expanded(["a", "b", "c", "d", "e"])
    finish_all(run, {"load[1]": S.failed, "load[3]": S.failed})
    assert [run.status(f"load[{i}]") for i in range(5)] == [
        S.succeeded,
        S.failed,
        S.succeeded,
        S.failed,
        S.succeeded,
    ]
    assert run.status("load") == S.failed
    assert run.states["load"].reason == "for_each: 3/5 succeeded · 2 failed"
    assert run.status("total") == S.upstream_failed
    assert run.final_status() == RunStatus.failed


def test_each_iteration_retries_on_its_own() -> None:
    run = expanded(["a", "b"], max_retries=1)
    run.start("load[0]")
    run.start("load[1]")
    run.finish("load[0]", S.failed, 0.0)
    run.finish("load[1]", S.succeeded, 0.0)
    assert run.status("load[0]") == S.up_for_retry and run.status("load") == S.running
    assert run.launchable(0.0) == ["load[0]"]
    run.start("load[0]")
    run.finish("load[0]", S.succeeded, 0.0)
    run.advance()
    assert run.status("load") == S.succeeded and run.states["load[0]"].attempts == 2


def test_no_inputs_skips_the_task_and_what_needs_it() -> None:
    tasks = fan_out()
    run = ActiveRun(tasks, {k: TaskState(S.pending) for k in tasks}, 4)
    run_to(run, "list_files", S.succeeded)
    run.expand("load", [], {})
    assert run.status("load") == S.skipped and run.states["load"].reason == "for_each: no inputs"
    run.advance()
    assert run.status("total") == S.skipped


def test_cancel_cancels_waiting_iterations_and_the_task() -> None:
    run = expanded(["a", "b", "c"], concurrency=1)
    run.start("load[0]")
    run.cancel("canceled by the user")
    assert run.status("load[1]") == S.canceled == run.status("load[2]")
    run.finish("load[0]", S.canceled, 0.0)
    run.advance()
    assert run.status("load") == S.canceled and run.is_done


def test_a_repair_expands_with_the_iterations_it_reuses() -> None:
    tasks = fan_out()
    states = {k: TaskState(S.succeeded, attempts=1) for k in ("list_files", "side")}
    states |= {"load": TaskState(S.pending), "total": TaskState(S.pending)}
    run = ActiveRun(tasks, states, 4)
    run.advance()
    changes = run.expand(
        "load", ["a", "b", "c"], {0: TaskState(S.succeeded, attempts=1), 1: TaskState(S.pending, attempts=1)}
    )
    assert [(c.task_key, c.new) for c in changes] == [
        ("load", S.running),
        ("load[1]", S.queued),
        ("load[2]", S.queued),
    ], "a reused iteration is not reported as a change"
    assert run.status("load[0]") == S.succeeded and run.states["load[1]"].attempts == 1
    assert run.launchable(0.0) == ["load[1]", "load[2]"]


def test_expand_refuses_a_task_that_is_not_a_queued_for_each_task() -> None:
    run = expanded(["a"])
    with pytest.raises(ValueError, match="not a queued for-each task"):
        run.expand("total", ["a"], {})


def test_iteration_counts() -> None:
    assert iteration_counts([S.succeeded] * 12) == "12/12"
    assert iteration_counts([S.succeeded] * 10 + [S.failed] * 2) == "10/12 · 2 failed"
    assert iteration_counts([S.succeeded, S.running, S.queued]) == "1/3 · 2 running"


# -- validation -----------------------------------------------------------------------------------------------


def make_job(tmp_path: Path, load: dict[str, Any], parameters: str = "input = ''") -> Path:
    folder = tmp_path / "job"
    write_notebook(folder / "list_files.ipynb", "pass", orchestrate={})
    write_notebook(
        folder / "load.ipynb",
        "pass",
        parameters=parameters,
        orchestrate={"depends_on": ["list_files"], **load},
    )
    return folder


def problems(folder: Path) -> list[str]:
    _, found = validate_job(folder, check_kernels=False)
    return [str(p) for p in found if not p.is_warning]


def test_valid_for_each_settings(tmp_path: Path) -> None:
    folder = make_job(
        tmp_path, {"for_each": {"inputs": "{{tasks.list_files.values.files}}", "concurrency": 4}}
    )
    job, found = validate_job(folder, check_kernels=False)
    assert job is not None and found == []
    for_each = job.task("load").for_each
    assert for_each is not None and for_each.concurrency == 4 and for_each.parameter == "input"
    assert for_each.max_inputs == 1000


@pytest.mark.parametrize(
    ("for_each", "expected"),
    [
        (
            {"inputs": "{{tasks.nothing.values.files}}"},
            "job/load.ipynb: for_each.inputs: {{tasks.nothing.values.files}} names unknown task 'nothing'",
        ),
        (
            {"inputs": "files: {{tasks.list_files.values.files}}"},
            "job/load.ipynb: for_each.inputs: 'files: {{tasks.list_files.values.files}}' is neither a list nor "
            "one reference",
        ),
        (
            {"inputs": [1, 2, 3], "max_inputs": 2},
            "job/load.ipynb: for_each.inputs: 3 inputs, more than max_inputs 2",
        ),
        (
            {"inputs": ["a"], "parameter": "file"},
            "job/load.ipynb: for_each.parameter: the notebook's parameters cell does not declare 'file'",
        ),
        (
            {"inputs": ["a"], "parameter": "not a name"},
            "job/load.ipynb: metadata.orchestrate.for_each.parameter: ",
        ),
        ({"inputs": ["a"], "concurrency": 0}, "job/load.ipynb: metadata.orchestrate.for_each.concurrency: "),
        (
            {"inputs": ["a"], "max_inputs": 20000},
            "job/load.ipynb: metadata.orchestrate.for_each.max_inputs: ",
        ),
        ({"inputs": 3}, "job/load.ipynb: metadata.orchestrate.for_each.inputs"),
    ],
)
def test_for_each_problems_name_file_field_and_problem(
    tmp_path: Path, for_each: dict[str, Any], expected: str
) -> None:
    found = problems(make_job(tmp_path, {"for_each": for_each}))
    assert any(p.startswith(expected) for p in found), found


def test_a_reference_to_a_task_that_is_not_upstream(tmp_path: Path) -> None:
    folder = make_job(tmp_path, {"for_each": {"inputs": "{{tasks.other.values.files}}"}})
    write_notebook(folder / "other.ipynb", "pass", orchestrate={})
    assert problems(folder) == [
        "job/load.ipynb: for_each.inputs: {{tasks.other.values.files}}: task 'other' is not upstream of task "
        "'load'; add it to depends_on"
    ]


def test_for_each_in_job_yaml_is_reported_there(tmp_path: Path) -> None:
    folder = make_job(tmp_path, {})
    (folder / "job.yaml").write_text("tasks:\n  load:\n    for_each: {inputs: 'not a reference'}\n")
    assert problems(folder) == [
        "job/job.yaml: tasks.load.for_each.inputs: 'not a reference' is neither a list nor one reference such "
        "as '{{tasks.<task_key>.values.<name>}}'"
    ]


def test_iterations_are_queued_in_map_index_order() -> None:
    run = expanded([f"f{i}" for i in range(12)], concurrency=3)
    assert run.queued == [f"load[{i}]" for i in range(12)], "kernels are started ahead in this order"


# -- the runner, no kernels --------------------------------------------------------------------------------------


def runner_job(
    tmp_path: Path, list_files: str = "pass", load: str = "pass", total: str = "pass", **settings: Any
) -> Path:
    """list_files -> load (for each of list_files' files, 2 at a time) -> total (rows: load's rows)."""
    folder = tmp_path / "job"
    write_notebook(folder / "list_files.ipynb", list_files, orchestrate={})
    write_notebook(
        folder / "load.ipynb",
        load,
        parameters="input = ''",
        orchestrate={
            "depends_on": ["list_files"],
            "for_each": {"inputs": "{{tasks.list_files.values.files}}", "concurrency": 2},
            **settings,
        },
    )
    write_notebook(
        folder / "total.ipynb",
        total,
        parameters="rows = []",
        orchestrate={"depends_on": ["load"], "parameters": {"rows": "{{tasks.load.values.rows}}"}},
    )
    return folder


def execute(service: OrchestrateService, runner: Any) -> Any:
    runner.execute()
    return service.get_run(runner.run_id)


FILES = ["a.csv", "b.csv", "bad.csv", "c.csv", "bad2.csv"]


def test_iterations_get_their_input_and_downstream_reads_their_values_as_a_list(tmp_path: Path) -> None:
    service = OrchestrateService(tmp_path / "state")
    script = {"list_files": [succeed(1, files=FILES)]}
    script |= {f"load[{i}]": [succeed(1, rows=10 * i) if i != 3 else succeed(1)] for i in range(5)}
    executor = MemoryExecutor(script)
    run = execute(service, service.new_run(runner_job(tmp_path), executor=executor, clock=executor.clock))
    assert run.status == RunStatus.succeeded
    load = run.task_run("load")
    assert load.status == S.succeeded and load.status_reason == "for_each: 5/5 succeeded"
    assert [(i.task_key, i.map_index, i.input) for i in load.iterations] == [
        (f"load[{i}]", i, f) for i, f in enumerate(FILES)
    ]
    assert [executor.started(f"load[{i}]")[0].parameters["input"] for i in range(5)] == FILES
    (total,) = executor.started("total")
    assert total.parameters["rows"] == [0, 10, 20, None, 40], "map_index order, None where no value was set"
    starts = sorted(h.started_at for i in range(5) for h in executor.started(f"load[{i}]"))
    assert starts == [1.0, 1.0, 2.0, 2.0, 3.0], "two at a time (concurrency 2)"
    home = tmp_path / "state"
    assert {h.spec.output_path for h in executor.started("load[4]")} == {
        str(home / "runs" / str(run.run_id) / "load" / "4" / "attempt-1.ipynb")
    }
    assert run.task_run("load[2]").input == "bad.csv", "an iteration is found by its key"


def test_two_of_five_fail_and_a_repair_re_executes_exactly_those(tmp_path: Path) -> None:
    service = OrchestrateService(tmp_path / "state")
    executor = MemoryExecutor(
        {
            "list_files": [succeed(1, files=FILES)],
            "load[2]": [fail(1)],
            "load[4]": [fail(1, evalue="broken")],
        },
        default=succeed(1, rows=1),
    )
    run = execute(service, service.new_run(runner_job(tmp_path), executor=executor, clock=executor.clock))
    assert run.status == RunStatus.failed
    load = run.task_run("load")
    assert load.status == S.failed and load.status_reason == "for_each: 3/5 succeeded · 2 failed"
    assert run.task_run("total").status == S.upstream_failed
    error = run.task_run("load[4]").attempts[0].error
    assert error is not None and error.evalue == "broken"

    run = execute(service, service.new_repair(run.run_id, executor=executor, clock=executor.clock))
    assert run.status == RunStatus.succeeded
    attempts = {i.task_key: len(i.attempts) for i in run.task_run("load").iterations}
    assert attempts == {"load[0]": 1, "load[1]": 1, "load[2]": 2, "load[3]": 1, "load[4]": 2}
    assert len(executor.started("list_files")) == 1
    assert run.task_run("load").status == S.succeeded and run.task_run("total").status == S.succeeded


def test_a_repair_that_names_the_task_re_executes_every_iteration(tmp_path: Path) -> None:
    service = OrchestrateService(tmp_path / "state")
    executor = MemoryExecutor({"list_files": [succeed(1, files=["a", "b"])]}, default=succeed(1, rows=1))
    run = execute(service, service.new_run(runner_job(tmp_path), executor=executor, clock=executor.clock))
    run = execute(
        service, service.new_repair(run.run_id, task_keys=["load"], executor=executor, clock=executor.clock)
    )
    assert [len(i.attempts) for i in run.task_run("load").iterations] == [2, 2]


def test_a_repair_with_new_inputs_re_executes_changed_iterations_and_skips_dropped_ones(
    tmp_path: Path,
) -> None:
    service = OrchestrateService(tmp_path / "state")
    executor = MemoryExecutor(
        {
            "list_files": [succeed(1, files=["a", "b", "c"]), succeed(1, files=["a", "x"])],
            "load[2]": [fail(1)],
        }
    )
    run = execute(service, service.new_run(runner_job(tmp_path), executor=executor, clock=executor.clock))
    assert run.task_run("load").status == S.failed
    run = execute(
        service,
        service.new_repair(run.run_id, task_keys=["list_files"], executor=executor, clock=executor.clock),
    )
    iterations = run.task_run("load").iterations
    assert [(i.input, i.status, len(i.attempts)) for i in iterations] == [
        ("a", S.succeeded, 1),  # same input, succeeded: reused
        ("x", S.succeeded, 2),  # new input at this index: executed again
        ("c", S.skipped, 1),  # no longer an input
    ]
    assert iterations[2].status_reason == "not among the inputs of repair 1"
    assert run.task_run("load").status_reason == "for_each: 2/2 succeeded"


def test_a_repair_of_what_is_downstream_reads_the_reused_for_each_values(tmp_path: Path) -> None:
    service = OrchestrateService(tmp_path / "state")
    executor = MemoryExecutor(
        {"list_files": [succeed(1, files=["a", "b"])], "total": [fail(1)]}, default=succeed(1, rows=7)
    )
    run = execute(service, service.new_run(runner_job(tmp_path), executor=executor, clock=executor.clock))
    assert run.task_run("load").status == S.succeeded and run.task_run("total").status == S.failed
    run = execute(service, service.new_repair(run.run_id, executor=executor, clock=executor.clock))
    assert run.status == RunStatus.succeeded, run.task_run("total").status_reason
    assert executor.started("total")[-1].parameters["rows"] == [7, 7], "the values of the reused iterations"
    assert [len(i.attempts) for i in run.task_run("load").iterations] == [1, 1]


def test_rerun_dependents_re_executes_only_the_failed_iterations_of_the_failed_task(tmp_path: Path) -> None:
    service = OrchestrateService(tmp_path / "state")
    executor = MemoryExecutor(
        {"list_files": [succeed(1, files=["a", "b", "c"])], "load[1]": [fail(1)]}, default=succeed(1, rows=1)
    )
    run = execute(service, service.new_run(runner_job(tmp_path), executor=executor, clock=executor.clock))
    repair = service.new_repair(run.run_id, rerun_dependents=True, executor=executor, clock=executor.clock)
    run = execute(service, repair)
    assert [len(i.attempts) for i in run.task_run("load").iterations] == [1, 2, 1]


def test_a_repaired_for_each_task_that_does_not_expand_drops_its_old_iterations(tmp_path: Path) -> None:
    service = OrchestrateService(tmp_path / "state")
    executor = MemoryExecutor(
        {"list_files": [succeed(1, files=["a", "b"]), fail(1)]}, default=succeed(1, rows=1)
    )
    run = execute(service, service.new_run(runner_job(tmp_path), executor=executor, clock=executor.clock))
    assert run.status == RunStatus.succeeded
    repair = service.new_repair(
        run.run_id, task_keys=["list_files"], rerun_dependents=True, executor=executor, clock=executor.clock
    )
    run = execute(service, repair)
    load = run.task_run("load")
    assert load.status == S.upstream_failed and load.task_values == {}
    assert [(i.status, i.status_reason) for i in load.iterations] == [
        (S.skipped, "not executed in repair 1")
    ] * 2


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ("a.csv", "for_each: for_each.inputs must be a JSON list, got str 'a.csv'"),
        (list(range(4)), "for_each: for_each.inputs has 4 elements, more than max_inputs 3"),
    ],
)
def test_inputs_that_are_not_a_list_within_bounds_fail_the_task(
    tmp_path: Path, files: Any, reason: str
) -> None:
    service = OrchestrateService(tmp_path / "state")
    executor = MemoryExecutor({"list_files": [succeed(1, files=files)]})
    path = runner_job(tmp_path)
    nb = nbformat.read(path / "load.ipynb", as_version=4)
    nb.metadata.orchestrate.for_each.max_inputs = 3
    nbformat.write(nb, path / "load.ipynb")
    run = execute(service, service.new_run(path, executor=executor, clock=executor.clock))
    load = run.task_run("load")
    assert load.status == S.failed and load.status_reason == reason and load.iterations == []
    assert run.task_run("total").status == S.upstream_failed


def test_an_empty_list_skips_the_task_and_its_dependents(tmp_path: Path) -> None:
    service = OrchestrateService(tmp_path / "state")
    executor = MemoryExecutor({"list_files": [succeed(1, files=[])]})
    run = execute(service, service.new_run(runner_job(tmp_path), executor=executor, clock=executor.clock))
    assert run.status == RunStatus.succeeded
    assert run.task_run("load").status == S.skipped and run.task_run("total").status == S.skipped
    assert not executor.started("load") and not executor.started("load[0]")


# -- end to end, real kernels ------------------------------------------------------------------------------------


@pytest.mark.kernel
def test_cli_for_each_two_of_five_fail_and_repair_re_executes_those_two(tmp_path: Path) -> None:
    folder = runner_job(
        tmp_path,
        list_files=f"from jupyter_orchestrate import task_values\ntask_values.set('files', {FILES!r})",
        load="from jupyter_orchestrate import task_values\n"
        "if 'bad' in input:\n    raise ValueError('cannot load ' + input)\n"
        "task_values.set('rows', len(input))",
        total="print(sum(rows))",
    )
    load = folder / "load.ipynb"
    home = tmp_path / "state"
    first = cli(home, "run", str(folder), timeout=300)
    assert first.returncode == 1, first.stderr
    assert "load: failed: for_each: 3/5 succeeded · 2 failed" in first.stderr
    assert "load[2]: failed: ValueError: cannot load bad.csv" in first.stderr
    runs = home / "runs" / "1" / "load"
    assert sorted(p.relative_to(runs).as_posix() for p in runs.glob("*/attempt-*.ipynb")) == [
        f"{i}/attempt-1.ipynb" for i in range(5)
    ]

    nb = nbformat.read(load, as_version=4)  # the user fixes the notebook
    nb.cells[1].source = "from jupyter_orchestrate import task_values\ntask_values.set('rows', len(input))"
    nbformat.write(nb, load)
    second = cli(home, "repair", "1", timeout=300)
    assert second.returncode == 0, second.stderr
    assert sorted(p.relative_to(runs).as_posix() for p in runs.glob("*/attempt-2.ipynb")) == [
        "2/attempt-2.ipynb",
        "4/attempt-2.ipynb",
    ]
    document = json.loads(cli(home, "show", "1", "--json", timeout=300).stdout)
    (load_run,) = [t for t in document["task_runs"] if t["task_key"] == "load"]
    assert [
        (i["map_index"], i["input"], i["status"], i["attempt_count"]) for i in load_run["iterations"]
    ] == [
        (0, "a.csv", "succeeded", 1),
        (1, "b.csv", "succeeded", 1),
        (2, "bad.csv", "succeeded", 2),
        (3, "c.csv", "succeeded", 1),
        (4, "bad2.csv", "succeeded", 2),
    ]
    total = nbformat.read(home / "runs" / "1" / "total" / "attempt-1.ipynb", as_version=4)
    outputs = [o.get("text", "") for c in total.cells for o in c.get("outputs", [])]
    assert "".join(outputs).strip() == str(sum(len(f) for f in FILES))
    shown = cli(home, "show", "1", timeout=300)
    assert "5/5" in shown.stdout and '[2] "bad.csv"' in shown.stdout


@pytest.mark.kernel
def test_repair_resume_resumes_the_failed_iteration_in_its_kept_kernel(tmp_path: Path) -> None:
    folder = tmp_path / "job"
    write_notebook(
        folder / "load.ipynb",
        "open(f'counter-{input}.txt', 'a').write('ran\\n')",
        "rows = len(input)",
        "import os\nassert input != 'bb' or os.path.exists('fixed.flag'), 'fixed.flag is missing'",
        "from jupyter_orchestrate import task_values\ntask_values.set('rows', rows)",
        parameters="input = 'a'",
        orchestrate={"for_each": {"inputs": ["a", "bb", "ccc"]}},
    )
    home = tmp_path / "state"
    failed = cli(home, "run", str(folder), "--keep-failed-kernels", "300", timeout=240)
    assert failed.returncode == 1, failed.stderr
    service = OrchestrateService(home)
    kept = service.get_run(1).task_run("load[1]").kept_kernel
    assert kept is not None and kept.cell_index == 3, "the failed iteration's kernel is kept"
    (folder / "fixed.flag").touch()
    resumed = cli(home, "repair", "1", "--resume", timeout=240)
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    run = service.get_run(1)
    load = run.task_run("load")
    assert load.status == S.succeeded and load.task_values == {"rows": [1, 2, 3]}
    second = run.task_run("load[1]").attempts[1]
    assert second.resumed_from_cell == 3 and second.reused_cells == 3, "resumed at the failed cell"
    assert (folder / "counter-bb.txt").read_text() == "ran\n", "its first cell did not run again"
    assert [len(i.attempts) for i in load.iterations] == [1, 2, 1], "the other iterations are reused"
    assert run.repairs[-1].resumed_from == {"load[1]": 3}
    assert run.task_run("load[1]").kept_kernel is None
    wait_for(
        lambda: not kernels_of(home) and not keepers_of(home), 15, "the resumed kernel and its keeper to end"
    )
