"""Kept kernels in the Jupyter server: register a kernel that this server did not start (a task attempt's kernel,
kept alive after it failed in a cell, see :mod:`jupyter_orchestrate.executors.keeper`) with the server's
kernel manager, so that JupyterLab's console or a notebook attaches to it like to any other kernel.

How it fits jupyter_server 2.x / jupyter_client 8.x (no monkey-patching of their classes):

- The kernel is a ``ServerKernelManager`` made by the server's own ``kernel_manager_factory``, so the REST API
  (``GET /api/kernels``), the kernel websocket (``/api/kernels/<id>/channels``, whichever
  ``kernel_websocket_connection_class`` is configured), activity tracking and the kernel-action events treat
  it like one of its own. Its connection info is loaded from the kept kernel's connection file
  (``load_connection_file``); since the manager did not *write* that file it never deletes it (the keeper
  owns it).
- Its provisioner is :class:`KeptKernelProvisioner`, which wraps the existing process (pid + psutil start time)
  instead of launching one: ``poll``/``wait`` follow the pid, ``send_signal`` signals the kernel's process
  group (it leads its own session), so interrupt (SIGINT) and shutdown (shutdown_request, then SIGTERM/SIGKILL
  if needed) from JupyterLab act on the real kernel.
- The kernel is put in the multi-kernel manager's map the way jupyter_client itself adopts external kernels
  (``MultiKernelManager.list_kernel_ids`` with ``external_connection_dir``): ``_kernels[kernel_id] = km``
  with ``km.ready`` resolved. Then the server's own ``MappingKernelManager._finish_kernel_start`` does the rest
  of the bookkeeping ``start_kernel`` does (``_kernel_ports``, ``start_watching_activity``, the "dead"
  callback that removes it from the map); ``_kernel_connections`` starts at 0 and ``execution_state``,
  ``reason`` and ``last_activity`` are set like ``_async_start_kernel`` sets them. These are the private
  fields touched: ``_kernels``, ``_kernel_connections``, ``_kernel_ports`` (MappingKernelManager),
  ``km._kernel_spec`` (a kernelspec for ``interrupt_mode``, since the kernel's name need not be installed
  here), ``km._attempted_start`` (True, as after a start: jupyter_client's ``in_pending_state`` then gives
  ``shutdown_kernel`` a fresh ``ready`` future instead of resolving the done one again), ``km._launch_args``
  (None, as before a start: ``restart_kernel`` then raises "Cannot restart the kernel" *before* shutting it
  down, so JupyterLab's "Restart Kernel" answers an error instead of killing the state being debugged) and
  ``km._restarter.restart_limit`` (0: a kept kernel that dies is never restarted, it is reported
  dead and removed).
- A kept kernel belongs to the orchestrator's keeper, not to the server: :func:`release_kept_kernels` takes
  the registered ones out of the map (without stopping them) before the server's ``shutdown_all``
  (``ServerApp._cleanup`` runs the extensions' ``stop_extension`` before ``cleanup_kernels``). Only an explicit
  shutdown (``DELETE /api/kernels/<id>``, JupyterLab's "Shut Down Kernel") or the idle culler, when the
  server is configured with one, stops it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import psutil
from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase
from jupyter_server._tz import utcnow
from jupyter_server.gateway.managers import GatewayMappingKernelManager
from jupyter_server.services.kernels.kernelmanager import MappingKernelManager

from jupyter_orchestrate.errors import ConflictError, ValidationError
from jupyter_orchestrate.executors.keeper import process_alive

#: Namespace of the kernel ids of kept kernels: uuid5(namespace, "<connection file>|<pid>|<create time>").
KEPT_KERNEL_NAMESPACE = uuid.UUID("8f0b8a52-3c8e-4f3e-9a55-6f1d2f6c3b1e")
#: How often ``wait`` polls the kernel process (seconds).
POLL_SECONDS = 0.1


class KeptKernelGoneError(ConflictError):
    """The kept kernel's process is not running (any more), or its pid now names another process."""


class KeptKernelProvisioner(KernelProvisionerBase):
    """A provisioner for a kernel process that already runs: it never launches, it follows and signals the
    process ``pid`` (the one started at ``create_time``, seconds since the epoch, when given)."""

    def __init__(self, pid: int, create_time: float | None, **kwargs: Any):
        super().__init__(**kwargs)
        self.pid = pid
        self.create_time = create_time
        self._exited = False

    def _alive(self) -> bool:
        if self._exited:
            return False
        if not process_alive(self.pid, self.create_time):
            self._exited = True
        return not self._exited

    @property
    def has_process(self) -> bool:
        """Whether the kernel process still runs (False once it exited: nothing left to signal)."""
        return self._alive()

    async def poll(self) -> int | None:
        """None while the kernel runs, else 0 (its exit code belongs to its parent, not to this server)."""
        return None if self._alive() else 0

    async def wait(self) -> int | None:
        """Wait until the kernel process is gone; returns 0."""
        while self._alive():
            await asyncio.sleep(POLL_SECONDS)
        return 0

    async def send_signal(self, signum: int) -> None:
        """Send ``signum`` to the kernel's process group when the kernel leads it (as a kept kernel does), else to
        the kernel process alone. Does nothing once the process is gone (or the pid was reused)."""
        if not self._alive():
            return
        try:
            if os.getpgid(self.pid) == self.pid:
                os.killpg(self.pid, signum)
            else:
                os.kill(self.pid, signum)
        except ProcessLookupError:
            self._exited = True

    async def kill(self, restart: bool = False) -> None:
        """SIGKILL the kernel (and its process group)."""
        await self.send_signal(signal.SIGKILL)

    async def terminate(self, restart: bool = False) -> None:
        """SIGTERM the kernel (and its process group)."""
        await self.send_signal(signal.SIGTERM)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        """Never: a kept kernel is not (re)started by the server. Raises RuntimeError."""
        raise RuntimeError("a kept kernel cannot be started or restarted by the Jupyter server")

    async def cleanup(self, restart: bool = False) -> None:
        """Nothing to release: the keeper owns the kernel's files."""

    async def get_provisioner_info(self) -> dict[str, Any]:
        """The base info plus ``pid`` and ``create_time``."""
        info = await super().get_provisioner_info()
        return {**info, "pid": self.pid, "create_time": self.create_time}

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        """Restore ``pid`` and ``create_time`` from :meth:`get_provisioner_info`."""
        await super().load_provisioner_info(provisioner_info)
        self.pid = provisioner_info["pid"]
        self.create_time = provisioner_info.get("create_time")


def kept_kernel_id(connection_file: str | Path, kernel_pid: int, kernel_create_time: float | None) -> str:
    """The kernel id a kept kernel gets in the server: the same for the same connection file and process."""
    created = "" if kernel_create_time is None else f"{kernel_create_time:.3f}"
    key = f"{os.path.realpath(connection_file)}|{kernel_pid}|{created}"
    return str(uuid.uuid5(KEPT_KERNEL_NAMESPACE, key))


def _provisioner(km: Any) -> KeptKernelProvisioner | None:
    provisioner = getattr(km, "provisioner", None)
    return provisioner if isinstance(provisioner, KeptKernelProvisioner) else None


def _read_connection_file(connection_file: Path) -> dict[str, Any]:
    try:
        info = json.loads(connection_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KeptKernelGoneError(f"the kept kernel's connection file {connection_file} is gone") from None
    except (OSError, ValueError) as exc:
        raise ValidationError(f"cannot read the connection file {connection_file}: {exc}") from None
    if not isinstance(info, dict) or not all(k in info for k in ("shell_port", "iopub_port", "key")):
        raise ValidationError(f"{connection_file} is not a kernel connection file")
    return info


async def register_kept_kernel(
    kernel_manager: MappingKernelManager,
    connection_file: str,
    kernel_pid: int,
    kernel_create_time: float | None,
    name: str,
) -> str:
    """Register the running kernel ``kernel_pid`` (its connection file ``connection_file``) with the server's
    kernel manager, so that it is listed by ``GET /api/kernels`` and reachable on its websocket.

    Args:
        kernel_manager: the server's ``MappingKernelManager`` (``serverapp.kernel_manager``).
        connection_file: the kernel's connection file (absolute path; read, never written or removed).
        kernel_pid, kernel_create_time: the kernel process and its psutil start time (seconds since the epoch;
            None skips the pid-reuse check).
        name: the kernel's name as listed (a kernelspec name such as ``python3``, so JupyterLab shows its
            language); "" uses the connection file's ``kernel_name`` when the server knows that kernelspec,
            else the server's default kernel name.

    Returns: the kernel id. Idempotent: the same connection file and process give the same id.

    Raises:
        KeptKernelGoneError (a ConflictError): the process is not running, or the pid now names another
            process (its start time differs), or the connection file is gone.
        ValidationError: the connection file is not one; the manager does not run kernels locally (a gateway).
    """
    if not isinstance(kernel_manager, MappingKernelManager) or isinstance(
        kernel_manager, GatewayMappingKernelManager
    ):
        raise ValidationError(
            f"this server's kernel manager ({type(kernel_manager).__name__}) does not run local kernels"
        )
    path = Path(connection_file)
    kernel_id = kept_kernel_id(path, kernel_pid, kernel_create_time)
    if kernel_id in kernel_manager:
        km = kernel_manager.get_kernel(kernel_id)
        provisioner = _provisioner(km)
        if provisioner is not None and provisioner.has_process:
            return kernel_id
        _forget(
            kernel_manager, kernel_id
        )  # registered earlier, dead since (the restarter had not seen it yet)
    if not process_alive(kernel_pid, kernel_create_time):
        try:
            created = psutil.Process(kernel_pid).create_time()
        except psutil.Error:
            raise KeptKernelGoneError(f"the kept kernel (pid {kernel_pid}) is not running") from None
        raise KeptKernelGoneError(
            f"the kept kernel is gone: pid {kernel_pid} now names another process (started at {created:.0f}, "
            f"the kernel at {kernel_create_time})"
            if kernel_create_time is not None and abs(created - kernel_create_time) >= 1.0
            else f"the kept kernel (pid {kernel_pid}) is not running"
        )
    info = _read_connection_file(path)
    kernel_name = name or _listed_name(kernel_manager, str(info.get("kernel_name") or ""))

    km = kernel_manager.kernel_manager_factory(
        parent=kernel_manager, log=kernel_manager.log, kernel_name=kernel_name, owns_kernel=True
    )
    km.load_connection_file(str(path))
    km.kernel_id = kernel_id
    # The kernel's name need not be an installed kernelspec here; interrupt needs only its interrupt mode.
    km._kernel_spec = KernelSpec(
        argv=[], display_name=kernel_name, language="python", interrupt_mode="signal", metadata={}
    )
    km.provisioner = KeptKernelProvisioner(
        kernel_pid, kernel_create_time, kernel_id=kernel_id, kernel_spec=km._kernel_spec, parent=km
    )
    km.provisioner.connection_info = km.get_connection_info()
    km.ready.set_result(None)
    km._attempted_start = True  # so that shutdown_kernel's in_pending_state makes a new ready future
    km._launch_args = None  # never started here: restart_kernel refuses before it shuts the kernel down
    km.execution_state = "idle"
    km.reason = ""
    km.last_activity = utcnow()
    km.start_restarter()
    if getattr(km, "_restarter", None) is not None:
        km._restarter.restart_limit = (
            0  # a kept kernel that dies is reported dead (and removed), never restarted
        )

    kernel_manager._kernels[kernel_id] = km
    kernel_manager._kernel_connections[kernel_id] = 0
    await kernel_manager._finish_kernel_start(kernel_id)  # type: ignore[no-untyped-call]
    kernel_manager.log.info(
        "jupyter-orchestrate: registered kept kernel %s (pid %s, %s)", kernel_id, kernel_pid, path
    )
    return kernel_id


def _listed_name(kernel_manager: MappingKernelManager, kernel_name: str) -> str:
    """The name to list a kept kernel under: its own when it is a kernelspec this server knows, else the
    server's default kernel name (a task's interpreter environment is named ``orchestrate-python``, which
    JupyterLab could not show a language or icon for)."""
    specs = kernel_manager.kernel_spec_manager
    try:
        known = set(specs.find_kernel_specs()) if specs is not None else set()
    except (OSError, ValueError):  # a broken kernelspec folder must not block debugging
        known = set()
    if kernel_name and kernel_name in known:
        return kernel_name
    return str(kernel_manager.default_kernel_name or "python3")


def _forget(kernel_manager: MappingKernelManager, kernel_id: str) -> None:
    """Take ``kernel_id`` out of the manager's map without stopping its process, closing the server's sockets."""
    km = kernel_manager._kernels.get(kernel_id)
    if km is None:
        return
    try:
        km.stop_restarter()
        kernel_manager.stop_watching_activity(kernel_id)  # type: ignore[no-untyped-call]
        kernel_manager.stop_buffering(kernel_id)  # type: ignore[no-untyped-call]
        km._close_control_socket()
    finally:
        kernel_manager.remove_kernel(kernel_id)
        kernel_manager._kernel_connections.pop(kernel_id, None)
        kernel_manager._kernel_ports.pop(kernel_id, None)


def kept_kernel_ids(kernel_manager: MappingKernelManager) -> list[str]:
    """The ids of the kept kernels registered with ``kernel_manager``."""
    return [kid for kid, km in list(kernel_manager._kernels.items()) if _provisioner(km) is not None]


def unregister_kept_kernel(kernel_manager: MappingKernelManager, kernel_id: str) -> bool:
    """Take the kept kernel ``kernel_id`` out of the server's kernel manager, leaving its process running.

    Returns: whether it was registered (False for an unknown id or a kernel the server started itself, which is
    left alone)."""
    km = kernel_manager._kernels.get(kernel_id)
    if km is None or _provisioner(km) is None:
        return False
    _forget(kernel_manager, kernel_id)
    return True


def release_kept_kernels(kernel_manager: Any) -> list[str]:
    """Take every kept kernel out of the server's kernel manager before the server shuts its kernels down, so
    that they keep running for the orchestrator's keeper (which stops them at their expiry).

    Returns: the released kernel ids."""
    if not isinstance(kernel_manager, MappingKernelManager):
        return []
    released = kept_kernel_ids(kernel_manager)
    for kernel_id in released:
        _forget(kernel_manager, kernel_id)
    return released
