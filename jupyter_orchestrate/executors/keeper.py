"""Kept kernels: the live kernel of an attempt that failed in a cell, kept for debugging and resume, and the
small detached *keeper* process that kills it at its expiry.

This is the one exception to "no kernel outlives its orchestrator": a kept kernel must survive the CLI
process that ran the attempt (so that a later ``repair --resume`` or a Jupyter server can use it), yet never
outlive its expiry, also when no orchestrator process runs then. So its lifetime belongs to a keeper: a
process of its own session (``python -m jupyter_orchestrate.executors.keeper CONTROL_FILE``, stdlib and
psutil only, a few MB) that polls a *control file* every :data:`POLL_SECONDS` and kills the kernel's process
group when

- the time in the control file (``expires_epoch``) has passed;
- the control file was removed (someone reaped the kernel: a repair, a cancel, crash recovery, the bound on
  kept kernels);
- a resume that took the kernel over (``owner_pid``) died without handing it back.

It exits, removing the kernel's files, when the kernel is gone. Files, under ``<state home>/kernels/`` (mode
0600, the connection file holds the kernel's message-signing key):

- ``<name>.json``: the kernel's connection file (``jupyter console --existing <file>``);
- ``<name>.keep.json``: the control file: ``kernel_pid``, ``kernel_create_time`` (psutil, seconds since the
  epoch), ``expires_epoch``, ``owner_pid``, ``owner_create_time``.

The keeper also drains the kernel process's own stdout/stderr (its stdin is that pipe), so that the kernel
never blocks on a full pipe after the attempt's worker exited; that output is discarded (cell output goes to
the executed notebook through the kernel's messages). Executors call :func:`keep`, :func:`take_over`,
:func:`hand_back` and :func:`reap`; nothing here touches the database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

#: How often the keeper looks at its control file and kernel (seconds).
POLL_SECONDS = 0.5
#: How long a kernel has to exit after SIGTERM before it gets SIGKILL (seconds).
TERM_GRACE_SECONDS = 2.0
KERNELS_DIR = "kernels"


@dataclass(frozen=True)
class KeptKernelInfo:
    """What an executor reports about a kernel it kept (the runner records it).

    Fields: ``connection_file`` and ``control_file`` (absolute paths), ``kernel_pid`` and
    ``kernel_create_time`` (psutil's start time, seconds since the epoch: with the pid it names the process
    even after pid reuse), ``keeper_pid``, ``expires_epoch`` (seconds since the epoch), ``cell_index`` (the
    input notebook's index of the failed cell).
    """

    connection_file: str
    control_file: str
    kernel_pid: int
    kernel_create_time: float | None
    keeper_pid: int | None
    expires_epoch: float
    cell_index: int | None


def kernel_files(state_home: str | Path, name: str) -> tuple[Path, Path]:
    """``(connection file, control file)`` of the kept kernel ``name`` under ``state_home``."""
    folder = Path(state_home) / KERNELS_DIR
    return folder / f"{name}.json", folder / f"{name}.keep.json"


def _write_private(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (temporary file + rename) with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def read_control(control_file: str | Path) -> dict[str, Any] | None:
    """The control file's fields, or None when it is missing or unreadable (being replaced counts as missing
    only if it stays so: :func:`_write_private` renames atomically)."""
    try:
        with open(control_file, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def process_alive(pid: int | None, create_time: float | None) -> bool:
    """Whether process ``pid`` runs and is the one started at ``create_time`` (not a zombie, not a reused pid)."""
    if not pid:
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(process.create_time() - create_time) < 1.0
    except psutil.Error:
        return False


def kill_kernel(pid: int, create_time: float | None, grace_seconds: float = TERM_GRACE_SECONDS) -> None:
    """Stop the kernel ``pid`` and its process group (it leads its own session): SIGTERM, then SIGKILL after
    ``grace_seconds``. Does nothing when the process is gone or the pid now names another process."""
    if not process_alive(pid, create_time):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except OSError:
            try:
                os.kill(pid, sig)
            except OSError:
                return
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline:
            if not process_alive(pid, create_time):
                return
            time.sleep(0.05)


def _remove(*paths: str | Path) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except OSError:
            pass


def keep(
    *,
    state_home: str | Path,
    name: str,
    connection_info: dict[str, Any],
    kernel_pid: int,
    kernel_create_time: float | None,
    seconds: float,
    cell_index: int | None,
    kernel_output_fd: int | None = None,
) -> KeptKernelInfo:
    """Keep a live kernel for ``seconds``: write its connection and control files and start its keeper.

    Args:
        state_home: the state home (files go to ``<state_home>/kernels/``).
        name: file stem, unique per attempt (e.g. ``run-3-clean-attempt-1``).
        connection_info: the kernel's connection info (jupyter_client's ``get_connection_info``: ports,
            transport, ip, key as str, signature_scheme, kernel_name).
        kernel_pid, kernel_create_time: the kernel process.
        seconds: how long to keep it (> 0).
        cell_index: the input notebook's index of the failed cell (reported back).
        kernel_output_fd: the read end of the pipe the kernel's stdout/stderr write to; the keeper drains it.

    Returns: what was kept. Raises OSError when the files cannot be written or the keeper cannot start (the
    caller then shuts the kernel down as usual).
    """
    connection_file, control_file = kernel_files(state_home, name)
    info = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in connection_info.items()}
    _write_private(connection_file, info)
    expires = time.time() + seconds
    _write_private(
        control_file,
        {
            "kernel_pid": kernel_pid,
            "kernel_create_time": kernel_create_time,
            "expires_epoch": expires,
            "owner_pid": None,
            "owner_create_time": None,
            "connection_file": str(connection_file),
        },
    )
    env = {k: v for k, v in os.environ.items() if k != "JPY_PARENT_PID"}
    try:
        keeper = subprocess.Popen(
            [sys.executable, "-m", "jupyter_orchestrate.executors.keeper", str(control_file)],
            stdin=kernel_output_fd if kernel_output_fd is not None else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # not in the orchestrator's process group: Ctrl-C and kills pass it by
            close_fds=True,
            env=env,
        )
    except OSError:
        _remove(connection_file, control_file)
        raise
    return KeptKernelInfo(
        connection_file=str(connection_file),
        control_file=str(control_file),
        kernel_pid=kernel_pid,
        kernel_create_time=kernel_create_time,
        keeper_pid=keeper.pid,
        expires_epoch=expires,
        cell_index=cell_index,
    )


def take_over(control_file: str | Path, owner_pid: int, owner_create_time: float | None) -> dict[str, Any]:
    """Mark the kept kernel as in use by the process ``owner_pid`` (a resume): its keeper no longer kills it at
    expiry, but does when the owner dies without :func:`hand_back`.

    Returns: the control file's fields. Raises LookupError when the kernel is no longer kept (control file
    gone, kernel dead, or already in use by a live process).
    """
    control = read_control(control_file)
    if control is None:
        raise LookupError("the kernel is no longer kept (reaped or expired)")
    if not process_alive(control.get("kernel_pid"), control.get("kernel_create_time")):
        raise LookupError("the kernel has exited")
    owner = control.get("owner_pid")
    if owner and owner != owner_pid and process_alive(owner, control.get("owner_create_time")):
        raise LookupError(f"the kernel is in use by process {owner}")
    control.update(owner_pid=owner_pid, owner_create_time=owner_create_time)
    _write_private(Path(control_file), control)
    return control


def hand_back(control_file: str | Path, seconds: float) -> float | None:
    """End a take-over and keep the kernel ``seconds`` more (a resume that failed in a cell again).

    Returns: the new expiry (seconds since the epoch), or None when the control file is gone (reaped meanwhile).
    """
    control = read_control(control_file)
    if control is None:
        return None
    expires = time.time() + seconds
    control.update(owner_pid=None, owner_create_time=None, expires_epoch=expires)
    _write_private(Path(control_file), control)
    return expires


def reap(
    control_file: str | Path, kernel_pid: int | None = None, kernel_create_time: float | None = None
) -> None:
    """End a kept kernel now: remove its control file (its keeper then exits) and kill the kernel.

    ``kernel_pid``/``kernel_create_time`` (from the store) are used when the control file is already gone.
    Never raises for a kernel that is already gone.
    """
    control = read_control(control_file) or {}
    pid = control.get("kernel_pid", kernel_pid)
    create_time = control.get("kernel_create_time", kernel_create_time)
    connection_file = control.get("connection_file") or str(control_file).replace(".keep.json", ".json")
    _remove(control_file)
    if pid:
        kill_kernel(int(pid), create_time)
    _remove(connection_file)


def _drain(stream: Any) -> None:
    try:
        while stream.read(65536):
            pass
    except (OSError, ValueError):
        pass


def keeper_main(control_file: str) -> int:
    """The keeper's loop (see the module docstring). Returns the process exit code (0)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_drain, args=(sys.stdin.buffer,), daemon=True).start()
    first = read_control(control_file)
    if first is None:
        return 0
    pid: int = int(first.get("kernel_pid") or 0)
    create_time = first.get("kernel_create_time")
    connection_file = first.get("connection_file")
    missing_since: float | None = None
    while True:
        if not process_alive(pid, create_time):
            break
        control = read_control(control_file)
        if control is None:
            # a rename in progress reads as missing for an instant; missing twice in a row is a reap
            if missing_since is not None:
                kill_kernel(pid, create_time)
                break
            missing_since = time.monotonic()
        else:
            missing_since = None
            owner = control.get("owner_pid")
            if owner:
                if not process_alive(owner, control.get("owner_create_time")):
                    kill_kernel(pid, create_time)
                    break
            elif time.time() >= float(control.get("expires_epoch") or 0):
                kill_kernel(pid, create_time)
                break
        time.sleep(POLL_SECONDS)
    if read_control(control_file) is not None and not process_alive(pid, create_time):
        _remove(control_file)
    if connection_file and not Path(control_file).exists():
        _remove(connection_file)
    return 0


if __name__ == "__main__":
    sys.exit(keeper_main(sys.argv[1]))
