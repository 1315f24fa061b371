"""Per-task environments with real kernels: requirements in cached venvs, an interpreter path, secrets."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from jupyter_orchestrate.models import RunStatus
from jupyter_orchestrate.service import OrchestrateService, run_document
from tests.test_e2e import run_job

pytestmark = pytest.mark.kernel


def test_conflicting_requirements_secrets_and_cache_reuse(
    make_notebook: Any, tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JO_TEST_TOKEN", "s3cr3t-value-4711")
    job = tmp_path / "pins"
    job.mkdir()
    (job / "job.yaml").write_text(
        textwrap.dedent("""
        environments:
          old_six: {requirements: ["six==1.15.0"]}
        tasks:
          old:
            environment_key: old_six
          also_old:
            environment_key: old_six
    """)
    )
    check = "import six, sys\nprint(sys.executable)\nassert six.__version__ == {v!r}, six.__version__"
    make_notebook("pins/old.ipynb", check.format(v="1.15.0"), orchestrate={})
    make_notebook("pins/also_old.ipynb", check.format(v="1.15.0"), orchestrate={})
    make_notebook(
        "pins/new.ipynb",
        check.format(v="1.16.0"),
        orchestrate={"environment": {"requirements": ["six==1.16.0"]}},
    )
    make_notebook(
        "pins/secret.ipynb",
        "import os\nprint('token is', os.environ['API_TOKEN'])",
        orchestrate={"environment": {"env": {"API_TOKEN": "${JO_TEST_TOKEN}", "PLAIN": "visible"}}},
    )
    run = run_job(home, job, max_parallel=4)
    assert run.status == RunStatus.succeeded, [(t.task_key, t.status, t.status_reason) for t in run.task_runs]
    envs = {t.task_key: t.attempts[0].environment for t in run.task_runs}
    assert envs["old"]["package_hash"] == envs["also_old"]["package_hash"] != envs["new"]["package_hash"]
    assert "six==1.15.0" in envs["old"]["freeze"] and "six==1.16.0" in envs["new"]["freeze"], envs
    assert [envs["old"]["built_now"], envs["also_old"]["built_now"]].count(True) == 1, (
        "built once for both tasks"
    )
    assert envs["secret"]["env_names"] == ["API_TOKEN", "PLAIN"]

    # the secret never lands in the executed notebook, the log, or the run document
    secret_attempt = run.task_run("secret").attempts[0]
    for path in (secret_attempt.notebook_path, secret_attempt.log_path):
        assert "s3cr3t-value-4711" not in Path(path).read_text()
    assert "token is ***" in Path(secret_attempt.notebook_path).read_text()
    assert "s3cr3t-value-4711" not in json.dumps(run_document(run))

    again = run_job(home, job, max_parallel=4)
    assert again.status == RunStatus.succeeded
    assert not any(t.attempts[0].environment.get("built_now") for t in again.task_runs), "cache reused"
    assert {t.task_key: t.attempts[0].environment.get("package_hash") for t in again.task_runs} == {
        k: v.get("package_hash") for k, v in envs.items()
    }
    listed = subprocess.run(
        [sys.executable, "-m", "jupyter_orchestrate", "--home", str(home), "env", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    doc = json.loads(listed.stdout)
    assert doc["state_home"] == str(home.resolve())
    assert sorted(e["requirements"][0] for e in doc["environments"]) == ["six==1.15.0", "six==1.16.0"]


def _other_interpreter(where: Path) -> Path:
    """A virtual environment with ipykernel, however the test suite itself runs (system Python or a venv).

    ``python -m venv --system-site-packages`` run from inside a venv sees the *base* installation's packages,
    not the venv's, so it would have no ipykernel; the orchestrator's own environment builder knows that rule.
    """
    from jupyter_orchestrate.environments import EnvironmentCache

    return EnvironmentCache(where).ensure([]).python


def test_python_interpreter_and_uninstallable_requirement(
    make_notebook: Any, tmp_path: Path, home: Path
) -> None:
    python = _other_interpreter(tmp_path / "interpreters")
    job = tmp_path / "interp"
    make_notebook(
        "interp/on_venv.ipynb",
        f"import sys\nassert sys.executable == {str(python)!r}, sys.executable",
        orchestrate={"environment": {"python": str(python)}},
    )
    make_notebook(
        "interp/broken.ipynb",
        "print('never')",
        orchestrate={"environment": {"requirements": ["this-package-does-not-exist-jo==1.0"]}},
    )
    run = run_job(home, job)
    assert run.task_run("on_venv").status.value == "succeeded"
    assert run.task_run("on_venv").attempts[0].environment["python"] == str(python)
    broken = run.task_run("broken").attempts[0]
    assert run.task_run("broken").status.value == "failed" and broken.error.kind == "launch_error"
    assert "this-package-does-not-exist-jo" in Path(broken.log_path).read_text()

    service = OrchestrateService(home)
    make_notebook("bad/no_python.ipynb", "1", orchestrate={"environment": {"python": "/nope/bin/python"}})
    _, problems = service.validate(tmp_path / "bad")
    assert any("environment.python" in str(p) and "does not exist" in str(p) for p in problems)


def test_environment_features_when_the_orchestrator_itself_runs_in_a_venv(
    make_notebook: Any, tmp_path: Path
) -> None:
    """``python:``, ``requirements`` and named environments work when the orchestrator runs in a virtual
    environment (``sys.prefix != sys.base_prefix``), as for a user who ``pip install``-ed into a fresh venv."""
    orchestrator = _other_interpreter(tmp_path / "orchestrator-venv")
    probe = subprocess.run(
        [str(orchestrator), "-c", "import sys; print(sys.prefix != sys.base_prefix)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert probe.stdout.strip() == "True", "the orchestrator under test must run in a venv"
    task_python = _other_interpreter(tmp_path / "task-interpreters")
    job = tmp_path / "venv_job"
    job.mkdir()
    (job / "job.yaml").write_text(
        textwrap.dedent("""
        environments:
          pinned: {requirements: ["six==1.16.0"], env: {STAGE: named}}
        tasks:
          named: {environment_key: pinned}
    """)
    )
    report = "import sys, os\nfrom jupyter_orchestrate import task_values\ntask_values.set('python', sys.executable)"
    make_notebook(
        "venv_job/named.ipynb",
        report,
        "import six\nassert six.__version__ == '1.16.0'\nassert os.environ['STAGE'] == 'named'",
        orchestrate={},
    )
    make_notebook(
        "venv_job/interpreter.ipynb", report, orchestrate={"environment": {"python": str(task_python)}}
    )
    make_notebook("venv_job/default.ipynb", report, orchestrate={})
    home = tmp_path / "state"
    done = subprocess.run(
        [str(orchestrator), "-m", "jupyter_orchestrate", "--home", str(home), "run", str(job), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    doc = json.loads(done.stdout)
    pythons = {t["task_key"]: t["task_values"].get("python") for t in doc["task_runs"]}
    assert pythons["interpreter"] == str(task_python)
    assert pythons["named"].startswith(str(home / "envs")), pythons
    assert doc["task_runs"][0]["status"] == "succeeded" and {t["status"] for t in doc["task_runs"]} == {
        "succeeded"
    }
