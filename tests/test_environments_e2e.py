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


def test_conflicting_requirements_secrets_and_cache_reuse(make_notebook: Any, tmp_path: Path, home: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JO_TEST_TOKEN", "s3cr3t-value-4711")
    job = tmp_path / "pins"
    job.mkdir()
    (job / "job.yaml").write_text(textwrap.dedent("""
        environments:
          old_six: {requirements: ["six==1.15.0"]}
        tasks:
          old:
            environment_key: old_six
          also_old:
            environment_key: old_six
    """))
    check = "import six, sys\nprint(sys.executable)\nassert six.__version__ == {v!r}, six.__version__"
    make_notebook("pins/old.ipynb", check.format(v="1.15.0"), orchestrate={})
    make_notebook("pins/also_old.ipynb", check.format(v="1.15.0"), orchestrate={})
    make_notebook("pins/new.ipynb", check.format(v="1.16.0"), orchestrate={"environment": {"requirements": ["six==1.16.0"]}})
    make_notebook("pins/secret.ipynb", "import os\nprint('token is', os.environ['API_TOKEN'])",
                  orchestrate={"environment": {"env": {"API_TOKEN": "${JO_TEST_TOKEN}", "PLAIN": "visible"}}})
    run = run_job(home, job, max_parallel=4)
    assert run.status == RunStatus.succeeded, [(t.task_key, t.status, t.status_reason) for t in run.task_runs]
    envs = {t.task_key: t.attempts[0].environment for t in run.task_runs}
    assert envs["old"]["package_hash"] == envs["also_old"]["package_hash"] != envs["new"]["package_hash"]
    assert "six==1.15.0" in envs["old"]["freeze"] and "six==1.16.0" in envs["new"]["freeze"], envs
    assert [envs["old"]["built_now"], envs["also_old"]["built_now"]].count(True) == 1, "built once for both tasks"
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
        k: v.get("package_hash") for k, v in envs.items()}
    listed = subprocess.run([sys.executable, "-m", "jupyter_orchestrate", "--home", str(home), "env", "list", "--json"],
                            capture_output=True, text=True, timeout=60)
    assert sorted(e["requirements"][0] for e in json.loads(listed.stdout)) == ["six==1.15.0", "six==1.16.0"]


def test_python_interpreter_and_uninstallable_requirement(make_notebook: Any, tmp_path: Path, home: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    job = tmp_path / "interp"
    make_notebook("interp/on_venv.ipynb", f"import sys\nassert sys.executable == {str(venv / 'bin' / 'python')!r}, sys.executable",
                  orchestrate={"environment": {"python": str(venv / "bin" / "python")}})
    make_notebook("interp/broken.ipynb", "print('never')",
                  orchestrate={"environment": {"requirements": ["this-package-does-not-exist-jo==1.0"]}})
    run = run_job(home, job)
    assert run.task_run("on_venv").status.value == "succeeded"
    assert run.task_run("on_venv").attempts[0].environment["python"] == str(venv / "bin" / "python")
    broken = run.task_run("broken").attempts[0]
    assert run.task_run("broken").status.value == "failed" and broken.error.kind == "launch_error"
    assert "this-package-does-not-exist-jo" in Path(broken.log_path).read_text()

    service = OrchestrateService(home)
    make_notebook("bad/no_python.ipynb", "1", orchestrate={"environment": {"python": "/nope/bin/python"}})
    _, problems = service.validate(tmp_path / "bad")
    assert any("environment.python" in str(p) and "does not exist" in str(p) for p in problems)
