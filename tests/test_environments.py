"""Task environments: env var expansion, secrets, requirements, and the venv cache (real venvs, real pip)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from jupyter_orchestrate.environments import (
    SECRET_WORDS,
    BuiltEnvironment,
    EnvironmentBuildError,
    EnvironmentCache,
    environment_hash,
    expand_env,
    is_secret,
    read_requirements,
    redact,
)
from jupyter_orchestrate.errors import OrchestrateError, ValidationError

REPO = Path(__file__).resolve().parent.parent
PINNED_SIX = "six==1.15.0"


def _version_in(python: Path, module: str) -> tuple[str, str]:
    code = f"import {module}; print({module}.__version__); print({module}.__file__)"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.split(
        "\n"
    )
    return out[0], out[1]


@pytest.fixture(scope="module")
def six_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[EnvironmentCache, BuiltEnvironment, str]:
    """One real venv with six==1.15.0, shared by the cache tests (building takes a few seconds)."""
    import six

    assert six.__version__ != "1.15.0", "the test needs a base interpreter whose six is not 1.15.0"
    cache = EnvironmentCache(tmp_path_factory.mktemp("home"))
    log = io.StringIO()
    env = cache.ensure([PINNED_SIX], log=log)
    return cache, env, log.getvalue()


# -------------------------------------------------------------------------------------------- the venv cache


def test_ensure_builds_venv_with_pinned_version_over_base(six_env):
    import six

    cache, env, log = six_env
    assert env.built_now is True
    assert cache.build_count == 1
    assert env.path == cache.home / "envs" / env.hash
    assert env.hash == environment_hash([PINNED_SIX])
    assert env.python == env.path / "bin" / "python"
    assert env.requirements == [PINNED_SIX]
    # The env's interpreter sees its own pinned six, from its own site-packages, not the base's.
    version, where = _version_in(env.python, "six")
    assert version == "1.15.0" != six.__version__
    assert Path(where).resolve().is_relative_to(env.path.resolve())
    # ... and still the base's packages (ipykernel for the kernel) through --system-site-packages.
    subprocess.run([str(env.python), "-c", "import ipykernel"], check=True)
    # The venv works after the rename from its temp dir: sys.prefix is the final path.
    prefix = subprocess.run(
        [str(env.python), "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert Path(prefix).resolve() == env.path.resolve()
    # Freeze lists the venv's own packages, and it is saved with the requirements and the marker.
    assert PINNED_SIX in env.freeze
    assert PINNED_SIX in (env.path / "freeze.txt").read_text().splitlines()
    assert not [line for line in env.freeze if line.lower().startswith("pytest==")]  # base-only: not listed
    assert (env.path / "requirements.txt").read_text().splitlines() == [PINNED_SIX]
    assert json.loads((env.path / "complete").read_text())["hash"] == env.hash
    # Progress went to the log, including pip's own output.
    assert f"creating environment {env.hash} for: {PINNED_SIX}" in log
    assert "Successfully installed six-1.15.0" in log
    # No temp dirs left behind.
    assert not list((cache.home / "envs").glob(".tmp-*"))


def test_console_scripts_of_a_built_environment_run(six_env):
    # Built in place (never renamed), so the shebangs of bin/ scripts point at the environment's python.
    _, env, _ = six_env
    shebang = (env.path / "bin" / "pip").read_text().splitlines()[0]
    assert shebang.startswith("#!") and str(env.path) in shebang
    out = subprocess.run(
        [str(env.path / "bin" / "pip"), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert str(env.path) in out.stdout  # pip of the environment, not of the base


def test_second_ensure_reuses_without_pip(six_env, monkeypatch):
    cache, env, _ = six_env
    before = (env.path / "last_used").stat().st_mtime
    time.sleep(0.05)
    calls: list[list[str]] = []
    real_popen = subprocess.Popen

    def spy(cmd, *args, **kwargs):
        calls.append(list(cmd))
        return real_popen(cmd, *args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", spy)
    log = io.StringIO()
    again = cache.ensure(["  six == 1.15.0 ", PINNED_SIX], log=log)  # an equivalent spelling
    assert again.built_now is False
    assert again.hash == env.hash and again.path == env.path
    assert again.freeze == env.freeze
    assert cache.build_count == 1
    assert calls == []  # neither venv nor pip ran
    assert "creating environment" not in log.getvalue()
    assert (env.path / "last_used").stat().st_mtime > before
    # Another cache object on the same home reuses it too.
    other = EnvironmentCache(cache.home)
    assert other.ensure([PINNED_SIX]).built_now is False and other.build_count == 0


def test_two_threads_build_once(tmp_path):
    cache = EnvironmentCache(tmp_path)
    logs = [io.StringIO(), io.StringIO()]
    results: list[BuiltEnvironment] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def worker(log: io.StringIO) -> None:
        try:
            barrier.wait()
            results.append(cache.ensure([PINNED_SIX], log=log))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(log,)) for log in logs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert cache.build_count == 1
    assert sorted(r.built_now for r in results) == [False, True]
    assert sum(log.getvalue().count("creating environment") for log in logs) == 1
    assert results[0].path == results[1].path


_PROCESS_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from jupyter_orchestrate.environments import EnvironmentCache
    home, go_at = sys.argv[1], float(sys.argv[2])
    time.sleep(max(0.0, go_at - time.time()))
    cache = EnvironmentCache(home)
    env = cache.ensure(["six==1.15.0"], log=sys.stderr)
    print(json.dumps({"built_now": env.built_now, "build_count": cache.build_count, "path": str(env.path)}))
    """
)


def test_two_processes_build_once(tmp_path):
    script = tmp_path / "ensure.py"
    script.write_text(_PROCESS_SCRIPT)
    home = tmp_path / "home"
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    go_at = time.time() + 1.5  # both start importing now and call ensure at the same instant
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(home), str(go_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environ,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (_out, err) in zip(procs, outputs, strict=False):
        assert p.returncode == 0, err
    results = [json.loads(out) for out, _ in outputs]
    assert sum(r["build_count"] for r in results) == 1
    assert sorted(r["built_now"] for r in results) == [False, True]
    assert sum(err.count("creating environment") for _, err in outputs) == 1
    assert len({r["path"] for r in results}) == 1
    assert [e["hash"] for e in EnvironmentCache(home).list()] == [Path(results[0]["path"]).name]


def test_uninstallable_requirement_raises_and_leaves_nothing(tmp_path):
    cache = EnvironmentCache(tmp_path)
    bad = "this-package-does-not-exist-jo==1.0"
    log = io.StringIO()
    with pytest.raises(EnvironmentBuildError) as info:
        cache.ensure([bad], log=log)
    assert isinstance(info.value, OrchestrateError)
    assert "this-package-does-not-exist-jo" in info.value.output
    assert "No matching distribution found" in info.value.output
    assert "pip install failed" in str(info.value)
    assert "No matching distribution found" in log.getvalue()  # streamed as it came
    envs = tmp_path / "envs"
    assert [p.name for p in envs.iterdir() if p.is_dir()] == []  # neither the env nor its temp dir
    assert cache.list() == []
    assert cache.build_count == 0


def test_list_and_prune(six_env, tmp_path):
    cache, env, _ = six_env
    [entry] = [e for e in cache.list() if e["hash"] == env.hash]
    assert entry["path"] == str(env.path)
    assert entry["requirements"] == [PINNED_SIX]
    assert entry["complete"] is True
    assert entry["size_bytes"] > 10_000  # six itself, pip, pyvenv.cfg ...
    assert entry["created_time"].endswith("+00:00") and entry["last_used_time"].endswith("+00:00")

    # A second, empty-requirements env (no pip install) and a fake incomplete directory.
    empty = cache.ensure([])
    assert empty.built_now is True and empty.requirements == [] and empty.hash != env.hash
    broken = cache.home / "envs" / "0123456789abcdef"
    broken.mkdir()
    listed = {e["hash"]: e for e in cache.list()}
    assert set(listed) == {env.hash, empty.hash, broken.name}
    assert listed[broken.name]["complete"] is False

    # Recently used envs survive an age-based prune; the incomplete one does not.
    assert cache.prune(unused_for_seconds=3600) == [broken.name]
    # Make the empty env look a day old: now it is pruned, the kept one is not.
    old = time.time() - 86_400
    os.utime(empty.path / "last_used", (old, old))
    os.utime(env.path / "last_used", (old, old))
    assert cache.prune(keep=[env.hash], unused_for_seconds=3600) == [empty.hash]
    assert not empty.path.exists() and env.path.exists()
    assert [e["hash"] for e in cache.list()] == [env.hash]
    assert EnvironmentCache(tmp_path / "nothing").list() == []
    assert EnvironmentCache(tmp_path / "nothing").prune() == []


def test_base_python_inside_a_venv_exposes_that_venvs_packages(tmp_path):
    # --system-site-packages alone would expose only the underlying installation, not the outer venv.
    outer = tmp_path / "outer"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(outer)], check=True)
    [site] = list(outer.glob("lib/python*/site-packages"))
    (site / "jo_outer_marker.py").write_text("VALUE = 42\n")
    env = EnvironmentCache(tmp_path / "home").ensure([], base_python=str(outer / "bin" / "python"))
    out = subprocess.run(
        [str(env.python), "-c", "import jo_outer_marker, six; print(jo_outer_marker.VALUE)"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "42"


# ----------------------------------------------------------------------------------- requirements and hash


def test_read_requirements_file_with_comments(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text(
        "# data stack\n\n  Pandas >= 2.0 , < 3   # inline comment\nsix==1.15.0\n\t\nrequests\nsix == 1.15.0\n"
    )
    assert read_requirements(["requests", "Zope.Interface"], req) == [
        "pandas>=2.0,<3",
        "requests",
        "six==1.15.0",
        "zope-interface",
    ]
    assert read_requirements(None, None) == []
    assert read_requirements([], None) == []
    assert read_requirements([" # only a comment", ""], None) == []
    with pytest.raises(ValidationError, match="cannot read requirements file"):
        read_requirements(None, tmp_path / "missing.txt")
    # packaging normalises: extras sorted and canonical, specifiers ordered by version, markers quoted
    assert read_requirements(
        ["Requests [Socks,security] >=2", "foo < 3, >= 2", "six; python_version>'3'"], None
    ) == [
        "foo>=2,<3",
        "requests[security,socks]>=2",
        'six; python_version > "3"',
    ]
    with pytest.raises(ValidationError, match="is not a valid requirement"):
        read_requirements(["six ==="], None)
    (tmp_path / "opts.txt").write_text("-r other.txt\n")
    with pytest.raises(ValidationError, match="pip options are not supported"):
        read_requirements(None, tmp_path / "opts.txt")


def test_environment_hash_depends_on_set_not_order():
    a = environment_hash(["six==1.15.0", "requests"])
    assert a == environment_hash(["requests", "six==1.15.0"])
    assert a == environment_hash(["requests", "six==1.15.0", "requests"])
    assert a != environment_hash(["six==1.15.0"])
    assert a != environment_hash(["six==1.16.0", "requests"])
    assert len(a) == 16 and int(a, 16) >= 0
    assert environment_hash([]) != environment_hash(["six"])


def test_environment_hash_depends_on_interpreter_version(monkeypatch):
    from jupyter_orchestrate import environments

    real = environment_hash(["six"])
    info = environments._python_info(sys.executable)
    fake = {**info, "version": "3.0.0"}
    monkeypatch.setattr(environments, "_python_info", lambda base_python: fake)
    assert environment_hash(["six"]) != real
    # ... and on the installation (or venv) it belongs to, whose packages the environment sees
    other = {**info, "prefix": "/opt/other-python"}
    monkeypatch.setattr(environments, "_python_info", lambda base_python: other)
    assert environment_hash(["six"]) != real


# ---------------------------------------------------------------------------------- env vars and secrets


def test_expand_env_set_unset_and_escaped():
    source = {"GITHUB_TOKEN": "ghp_abc", "EMPTY": "", "HOME": "/home/u"}
    assert expand_env(
        {
            "TOKEN": "${GITHUB_TOKEN}",
            "URL": "https://x/${HOME}/y",
            "E": "${EMPTY}",
            "LIT": "$${GITHUB_TOKEN}",
            "BARE": "$HOME and a$b",
            "PLAIN": "v",
        },
        source,
    ) == {
        "TOKEN": "ghp_abc",
        "URL": "https://x//home/u/y",
        "E": "",
        "LIT": "${GITHUB_TOKEN}",
        "BARE": "$HOME and a$b",
        "PLAIN": "v",
    }
    with pytest.raises(ValidationError) as info:
        expand_env({"API": "${MISSING_ONE}", "OK": "${HOME}", "DB": "x${MISSING_TWO}"}, source)
    message = str(info.value)
    assert "MISSING_ONE" in message and "env.API" in message
    assert "MISSING_TWO" in message and "env.DB" in message
    assert len(info.value.problems) == 2


def test_expand_env_defaults_to_os_environ(monkeypatch):
    monkeypatch.setenv("JO_TEST_VAR", "from-os")
    monkeypatch.delenv("JO_TEST_UNSET", raising=False)
    assert expand_env({"A": "${JO_TEST_VAR}"}) == {"A": "from-os"}
    with pytest.raises(ValidationError, match="JO_TEST_UNSET"):
        expand_env({"A": "${JO_TEST_UNSET}"})


def test_is_secret():
    assert SECRET_WORDS == ("TOKEN", "SECRET", "PASSWORD", "KEY")
    for name in ("GITHUB_TOKEN", "api_key", "DbPassword", "client_secret"):
        assert is_secret(name), name
    for name in ("HOME", "PATH", "DATA_DIR"):
        assert not is_secret(name), name
    assert is_secret("DSN", marked=["DSN"])
    assert not is_secret("DSN", marked=["OTHER"])


def test_redact():
    text = "token=ghp_abcdef password=hunter22 id=7 again ghp_abcdef"
    assert redact(text, ["ghp_abcdef", "hunter22", "7", ""]) == "token=*** password=*** id=7 again ***"
    assert redact("nothing here", []) == "nothing here"
    # A secret containing another is hidden whole, whichever order they come in.
    assert redact("xx-abcd-efgh-xx", ["abcd", "abcd-efgh"]) == "xx-***-xx"


def test_validation_reports_bad_requirements_before_any_run(make_notebook, tmp_path, home):
    from jupyter_orchestrate.service import OrchestrateService

    make_notebook("reqs/inline.ipynb", "1", orchestrate={"environment": {"requirements": ["six ==="]}})
    make_notebook("reqs/from_file.ipynb", "1", orchestrate={"environment": {"requirements_file": "reqs.txt"}})
    (tmp_path / "reqs" / "reqs.txt").write_text("six==1.15.0\n--index-url https://example.com/simple\n")
    _, problems = OrchestrateService(home).validate(tmp_path / "reqs")
    shown = sorted(str(p) for p in problems)
    assert any("environment.requirements:" in s and "is not a valid requirement" in s for s in shown), shown
    assert any(
        "environment.requirements_file:" in s and "pip options are not supported" in s for s in shown
    ), shown


def test_a_build_in_progress_is_neither_listed_nor_pruned(tmp_path):
    from filelock import FileLock

    cache = EnvironmentCache(tmp_path)
    building = cache.envs_dir / "0123456789abcdef"
    building.mkdir(parents=True)  # built in place: no marker yet, its build lock held
    with FileLock(cache.envs_dir / f"{building.name}.lock"):
        assert cache.list() == []
        assert cache.prune() == []
        assert building.is_dir()
    # the lock is free: what is left is a crashed build's debris
    assert [(e["hash"], e["complete"]) for e in cache.list()] == [(building.name, False)]
    assert cache.prune() == [building.name] and not building.exists()
