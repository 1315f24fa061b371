"""One history per workspace: the one rule that finds the state home (workspace.find_state_home), used by the
CLI, the Python API, the scheduler and the server; read-only commands that create nothing; run ids that never
collide in a workspace; one rule for a run's parallelism."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner

from jupyter_orchestrate.cli import main
from jupyter_orchestrate.discovery import load_job
from jupyter_orchestrate.executors.memory import MemoryExecutor, fail
from jupyter_orchestrate.models import Trigger
from jupyter_orchestrate.service import OrchestrateService
from jupyter_orchestrate.store import Store
from jupyter_orchestrate.workspace import DB_NAME, HOME_ENV, HOME_NAME, find_state_home
from tests.conftest import REPO, write_notebook


@pytest.fixture(autouse=True)
def no_home_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HOME_ENV, raising=False)


def make_home(folder: Path, name: str = HOME_NAME) -> Path:
    """An existing state home with one recorded (never executed) run of a job in ``folder/job``."""
    job = folder / "job"
    if not job.exists():
        write_notebook(job / "a.ipynb", "pass", orchestrate={})
    store = Store(folder / name)
    store.create_run(load_job(job), parameters={}, overrides={}, max_parallel_tasks=1)
    store.close()
    return folder / name


def files_under(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*")}


# -- the rule ------------------------------------------------------------------------------------------------
def test_explicit_home_wins_then_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_home(tmp_path)
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "from_env"))
    chosen = find_state_home(tmp_path / "job", explicit=str(tmp_path / "given"))
    assert (chosen.path, chosen.kind, chosen.how) == (
        (tmp_path / "given").resolve(),
        "explicit",
        "given by --home",
    )
    chosen = find_state_home(tmp_path / "job", explicit=None)
    assert (chosen.path, chosen.how) == ((tmp_path / "from_env").resolve(), f"from ${HOME_ENV}")


def test_the_nearest_home_above_the_job_folder_is_found_like_git_finds_dot_git(tmp_path: Path) -> None:
    outer = make_home(tmp_path)
    inner = make_home(tmp_path / "team")
    job = tmp_path / "team" / "jobs" / "daily"
    chosen = find_state_home(job, explicit=None)
    assert (chosen.path, chosen.kind, chosen.how) == (inner.resolve(), "found", "found above the job folder")
    assert find_state_home(tmp_path / "other", explicit=None).path == outer.resolve()
    assert find_state_home(tmp_path, explicit=None).how == "found in the job folder"


def test_a_folder_named_like_a_home_without_a_database_is_not_a_home(tmp_path: Path) -> None:
    (tmp_path / "sub" / HOME_NAME).mkdir(parents=True)
    home = make_home(tmp_path)
    assert find_state_home(tmp_path / "sub" / "job", explicit=None).path == home.resolve()


def test_an_old_dot_orchestrate_is_used_as_it_is_and_never_renamed(tmp_path: Path) -> None:
    old = make_home(tmp_path, ".orchestrate")
    chosen = find_state_home(tmp_path / "job", explicit=None)
    assert chosen.path == old.resolve() and chosen.kind == "found"
    assert chosen.how == "found above the job folder; old name .orchestrate, used as it is"
    assert old.is_dir() and not (tmp_path / HOME_NAME).exists()
    # both in one folder: orchestrate_runs wins, and the older one is named so its runs can still be read
    new = make_home(tmp_path)
    chosen = find_state_home(tmp_path / "job", explicit=None)
    assert chosen.path == new.resolve()
    assert f"{tmp_path / '.orchestrate'} beside it holds older runs" in chosen.how


def test_the_walk_stops_at_the_git_root_and_a_new_home_goes_there(tmp_path: Path) -> None:
    make_home(tmp_path)  # above the repository: another workspace's home
    repo = tmp_path / "repo"
    (repo / "jobs" / "daily").mkdir(parents=True)
    (repo / ".git").write_text("gitdir: /elsewhere/.git/worktrees/repo\n")  # a worktree's .git is a file
    before = files_under(tmp_path)
    chosen = find_state_home(repo / "jobs" / "daily", explicit=None)
    assert (chosen.path, chosen.kind, chosen.how) == (
        repo.resolve() / HOME_NAME,
        "new",
        "new, at the root of the git repository",
    )
    assert files_under(tmp_path) == before, "finding a home creates nothing"


def test_outside_a_repository_a_new_home_is_made_in_the_current_directory_or_the_server_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    chosen = find_state_home(None, explicit=None)
    assert (chosen.path, chosen.how) == (tmp_path.resolve() / HOME_NAME, "new, in the current directory")
    served = find_state_home(None, explicit=None, server_root=tmp_path / "root")
    assert (served.path, served.how) == ((tmp_path / "root").resolve() / HOME_NAME, "new, in the server root")
    make_home(tmp_path)
    assert (
        find_state_home(None, explicit=None, server_root=tmp_path / "root").how
        == "found above the server root"
    )


# -- the CLI: reading creates nothing, and names the home -------------------------------------------------------
def cli(*args: str) -> object:
    return CliRunner().invoke(main, list(args))


def test_read_only_commands_create_no_folder_or_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    home = tmp_path.resolve() / HOME_NAME
    listed = cli("runs")
    assert listed.exit_code == 0, listed.output
    assert (
        listed.stdout.strip()
        == f"no runs yet in {home} (new, in the current directory): start one with  jupyter orchestrate run PATH"
    )
    as_json = cli("runs", "--json")
    assert json.loads(as_json.stdout) == {"runs": [], "state_home": str(home)}
    shown = cli("show", "2")
    assert shown.exit_code == 2
    assert shown.stderr.strip() == f"error: run 2 not found: no runs yet in state home {home}"
    write_notebook(tmp_path / "job" / "a.ipynb", "pass", orchestrate={})
    validated = cli("validate", "job")
    assert validated.exit_code == 0, validated.output
    assert f"runs are recorded in the state home: {home} (new, in the current directory)" in validated.stdout
    envs = cli("env", "list", "--json")
    assert json.loads(envs.stdout) == {"environments": [], "state_home": str(home)}
    assert files_under(tmp_path) == {Path("job"), Path("job/a.ipynb")}, "nothing was created"


def test_commands_name_the_home_they_used_and_how_it_was_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = make_home(tmp_path, ".orchestrate")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    listed = cli("runs")
    assert listed.exit_code == 0, listed.output
    first = listed.stdout.splitlines()[0]
    assert (
        first
        == f"state home: {old.resolve()} (found above the current directory; old name .orchestrate, used as it is)"
    )
    assert "job" in listed.stdout.splitlines()[-1], listed.stdout
    shown = cli("show", "1", "--json")
    assert json.loads(shown.stdout)["state_home"] == str(old.resolve())
    missing = cli("show", "2")
    assert (
        missing.exit_code == 2
        and missing.stderr.strip() == f"error: run 2 not found in state home {old.resolve()}"
    )
    canceled = cli("cancel", "7")
    assert canceled.stderr.strip() == f"error: run 7 not found in state home {old.resolve()}"
    assert not (tmp_path / HOME_NAME).exists() and not (tmp_path / "sub" / HOME_NAME).exists()


# -- one history: run ids never collide in a workspace ----------------------------------------------------------
def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != HOME_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@pytest.mark.kernel
@pytest.mark.timeout(600)
def test_cli_from_root_and_subfolder_and_the_python_api_share_one_history(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / ".git").mkdir(parents=True)
    job = ws / "jobs" / "hello"
    write_notebook(
        job / "write.ipynb",
        "from pathlib import Path\nPath(output_dir).mkdir(parents=True)\n"
        "(Path(output_dir) / 'done.txt').write_text('ok')",
        parameters="output_dir = ''",
        orchestrate={},
    )
    (job / "job.yaml").write_text('parameters:\n  output_dir: "output/run-{{job.run_id}}"\n')

    def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, *args],
            cwd=cwd,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done

    home = ws.resolve() / HOME_NAME
    first = run(ws, "-m", "jupyter_orchestrate", "run", "jobs/hello")
    assert f"state home: {home} (new, at the root of the git repository)" in first.stderr
    second = run(ws / "jobs", "-m", "jupyter_orchestrate", "run", "hello", "--json")
    assert json.loads(second.stdout)["state_home"] == str(home)
    # a notebook's cwd is its folder: the Python API finds the same home walking up from the job folder
    api = run(
        job,
        "-c",
        "from jupyter_orchestrate import Job\njob = Job.load('.')\nprint(job.home, job.run().status)",
    )
    assert api.stdout.split() == [str(home), "succeeded"]

    with closing(sqlite3.connect(f"file:{home / DB_NAME}?mode=ro", uri=True)) as conn:
        assert conn.execute("select run_id, status from runs order by run_id").fetchall() == [
            (1, "succeeded"),
            (2, "succeeded"),
            (3, "succeeded"),
        ]
    assert sorted(p.name for p in (job / "output").iterdir()) == ["run-1", "run-2", "run-3"]
    homes = list(tmp_path.rglob(DB_NAME))
    assert homes == [home / DB_NAME], f"one state home in the workspace: {homes}"


# -- parallelism: the job's own setting wins over the orchestrator's default -----------------------------------
def test_a_jobs_max_parallel_tasks_wins_over_the_default_for_every_kind_of_run(tmp_path: Path) -> None:
    for key in ("a", "b", "c"):
        write_notebook(tmp_path / "set" / f"{key}.ipynb", "pass", orchestrate={})
        write_notebook(tmp_path / "unset" / f"{key}.ipynb", "pass", orchestrate={})
    (tmp_path / "set" / "job.yaml").write_text("max_parallel_tasks: 2\n")
    service = OrchestrateService(tmp_path / "state", default_max_parallel=7)  # the server's trait

    def parallel(path: Path, **kwargs: object) -> int:
        executor = MemoryExecutor({"a": [fail(1)]})
        runner = service.new_run(path, executor=executor, clock=executor.clock, **kwargs)  # type: ignore[arg-type]
        assert runner.active.max_parallel == service.get_run(runner.run_id).max_parallel_tasks
        if path.name == "set" and not kwargs:
            assert runner.execute().value == "failed"
            repair = service.new_repair(runner.run_id, executor=MemoryExecutor(), clock=executor.clock)
            assert repair.active.max_parallel == 2, "a repair takes the job's setting too"
        return runner.active.max_parallel

    assert parallel(tmp_path / "set") == 2, "the job's own setting, not the default"
    assert parallel(tmp_path / "unset") == 7, "the default when the job says nothing"
    assert parallel(tmp_path / "set", max_parallel=3) == 3, "an explicit request wins"
    assert parallel(tmp_path / "set", trigger=Trigger.schedule) == 2
    assert parallel(tmp_path / "unset", trigger=Trigger.file_arrival) == 7, (
        "scheduled and triggered runs get the default"
    )
