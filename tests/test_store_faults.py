"""A damaged state database or a full disk: every command says so in one line naming the file and what to do,
exits non-zero, never prints a traceback, and never writes into a damaged file. Real runs, real SQLite, a real
(small, full) file system."""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import psutil
import pytest

from jupyter_orchestrate.store import DB_NAME

REPO = Path(__file__).resolve().parent.parent


def cli(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jupyter_orchestrate", "--home", str(home), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_one_error_line(result: subprocess.CompletedProcess[str], db: Path, *expected: str) -> str:
    """The command failed with exit code 1 and printed exactly one line, ``error: ...`` naming ``db`` (after
    ``run``'s first progress line, which comes before the store is opened: issue 11's latency goal)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if lines and re.fullmatch(r"job \S+: \d+ task\(s\); starting a run", lines[0]):
        lines = lines[1:]
    assert len(lines) == 1, result.stderr
    assert result.returncode == 1, result
    assert lines[0].startswith("error: ") and str(db) in lines[0], lines[0]
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def job(make_notebook: Any, tmp_path: Path) -> Path:
    make_notebook(
        "job/hello.ipynb",
        "import time\ntime.sleep(seconds)\nprint('hello')",
        parameters="seconds = 0",
        orchestrate={},
    )
    return tmp_path / "job"


def _garbage_over_a_middle_page(db: Path) -> int:
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the main file, none hidden in the WAL
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0  # every page is in use
    page = pages // 2 + 1
    with open(db, "r+b") as f:
        f.seek((page - 1) * page_size)
        f.write(random.Random(page).randbytes(page_size))
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:  # the damage is real
        try:
            assert conn.execute("PRAGMA quick_check").fetchall() != [("ok",)]
        except sqlite3.DatabaseError as exc:
            assert "malformed" in str(exc)
    return page


@pytest.mark.timeout(600)
def test_a_damaged_page_is_one_clear_error_for_every_command_and_nothing_writes_to_it(
    job: Path, home: Path
) -> None:
    made = cli(home, "run", str(job))
    assert made.returncode == 0, made.stderr
    db = home / DB_NAME
    _garbage_over_a_middle_page(db)
    before = digest(db)
    for args in (["runs"], ["runs", "--json"], ["show", "1"], ["run", str(job)], ["repair", "1"]):
        result = cli(home, *args)
        assert_one_error_line(result, db, "is damaged", "left unchanged", "move it", ".recover")
        assert result.stdout == ""
        assert digest(db) == before, f"{args} changed the damaged database"


@pytest.mark.timeout(600)
def test_a_file_that_is_not_a_database_is_one_clear_error_and_stays_as_it_was(job: Path, home: Path) -> None:
    home.mkdir()
    db = home / DB_NAME
    db.write_bytes(b"these are my notes, not an SQLite database\n" * 200)
    before = digest(db)
    for args in (["runs"], ["show", "1"], ["run", str(job)], ["cancel", "1"]):
        result = cli(home, *args)
        assert_one_error_line(result, db, "file is not a database", "move it")
        assert digest(db) == before, f"{args} changed the file"


@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    """A real 8 MB file system (tmpfs) to fill; needs root (the test is skipped otherwise)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command to create a small file system to fill")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {mounted.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _running_attempt(db: Path) -> dict[str, Any] | None:
    if not db.exists():
        return None
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute(
                "select * from attempts where status = 'running' and kernel_pid is not null"
            ).fetchone()
            return dict(row) if row else None
    except sqlite3.OperationalError:  # the schema is still being created
        return None


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)
    return value


@pytest.mark.timeout(900)
def test_disk_full_mid_run_is_one_clear_error_and_the_database_survives(job: Path, small_disk: Path) -> None:
    home = small_disk / "state"
    db = home / DB_NAME
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_orchestrate",
            "--home",
            str(home),
            "run",
            str(job),
            "-p",
            "seconds=600",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    filler = small_disk / "filler"
    try:
        attempt = _wait(lambda: _running_attempt(db), 300, "the attempt's kernel to run")
        # fill the disk while the task executes: the run's next write fails
        # unbuffered: a buffered file would fail again on close, flushing what the full disk refused
        with open(filler, "wb", buffering=0) as f, pytest.raises(OSError, match="No space left"):
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        _out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert "Traceback" not in err, err
    assert proc.returncode == 1, err
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert (
        last.startswith("error: ") and str(db) in last and "disk is full" in last and "free space" in last
    ), err
    _wait(lambda: not psutil.pid_exists(attempt["kernel_pid"]), 60, "the run's kernel to be stopped")

    full = cli(home, "runs")  # recovery of the dead run cannot be written yet: said so, nothing half-written
    assert_one_error_line(full, db, "disk is full", "free space")

    filler.unlink()
    listed = cli(home, "runs", "--json")
    assert listed.returncode == 0, listed.stderr
    (run,) = json.loads(listed.stdout)["runs"]
    assert (run["run_id"], run["status"]) == (1, "failed")
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    again = cli(home, "run", str(job))
    assert again.returncode == 0, again.stderr
    shown = cli(home, "show", "1", "--json")
    assert json.loads(shown.stdout)["status_reason"].startswith("the orchestrator (pid")
