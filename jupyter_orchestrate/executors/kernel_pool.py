"""KernelPool: kernels launched ahead of need by the orchestrator's own process, each handed to exactly one
attempt and never reused (an attempt always gets a fresh kernel; the pool only hides start-up time).

Why here and not in the attempt's worker: a worker is forked from the forkserver, which first imports the
execution stack (~1 s on this machine), and the kernel then boots for another ~0.7 s. Launching the kernel from
the orchestrator (a ``Popen`` through jupyter_client, ~20 ms) lets both happen at once, as the floor runner of
issue 15 does; the worker attaches to the running kernel by its connection info (:class:`AttachSpec`).

A pooled kernel's stdout/stderr go to a pipe whose read end is handed to the attempt's worker, which redacts
it into the attempt log like the output of a kernel it launched itself (nothing unredacted touches the disk).
Its parent is the orchestrator's process: ipykernel's parent poller ends it if that process dies, so no pooled
kernel outlives its orchestrator (a kept one ends with its server too, as kept kernels of a server do).

Two uses: a :class:`~.local.LocalExecutor` launches the kernel of each attempt it prepares (:meth:`launch`), and
a Jupyter server keeps :meth:`warm` kernels of the task settings its runs used, bounded in count and idle time,
so a run started from the sidebar does not wait for a kernel either (:meth:`take`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

#: Idle kernels a server keeps warm, over all task settings (each holds ~60 MB).
DEFAULT_MAX_IDLE = 2
#: Seconds an idle kernel waits for an attempt before it is shut down.
DEFAULT_IDLE_SECONDS = 600.0


@dataclass(frozen=True)
class KernelKey:
    """What makes a kernel fit an attempt: the kernelspec, the working directory and the whole environment
    (the orchestrator's, the task's variables; the attempt's context variable is set after attaching)."""

    kernel_name: str
    cwd: str
    env: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, kernel_name: str, cwd: str, env: Mapping[str, str]) -> KernelKey:
        return cls(kernel_name, cwd, tuple(sorted(env.items())))


@dataclass(frozen=True)
class AttachSpec:
    """A running kernel an attempt's worker attaches to instead of launching one.

    ``connection_info``: jupyter_client's connection info (ports, ip, transport, key as str, signature_scheme);
    ``kernel_pid``/``kernel_create_time``: the kernel process; ``output_fd``: the read end of the pipe its
    stdout/stderr write to, as a :class:`multiprocessing.reduction.DupFd` while in transit to the worker;
    ``launch_env``: the variables it was launched with beyond its key's (a warm kernel: none).
    """

    connection_info: dict[str, Any]
    kernel_pid: int
    kernel_create_time: float | None
    output_fd: Any = None
    launch_env: dict[str, str] = field(default_factory=dict)  # variables it got beyond its key's environment


@dataclass(eq=False)
class PooledKernel:
    """A kernel launched by the pool: its manager, what a worker needs to attach, and when it was launched."""

    key: KernelKey
    manager: Any  # jupyter_client.KernelManager
    attach: AttachSpec
    output_read_fd: int | None
    launched: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.attach.kernel_pid

    def close_output(self) -> None:
        """Close the orchestrator's read end of the kernel's output pipe (the worker holds its own copy)."""
        if self.output_read_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.output_read_fd)
            self.output_read_fd = None


def kernelspec_manager(kernel_name: str) -> Any:
    """A kernelspec manager that finds ``kernel_name``: one over the Jupyter data path when the name is there
    (or is the native ``python3``), else jupyter_client's default, whose search of IPython's folder imports
    IPython (0.5 s of CPU in the orchestrator, competing with the kernels it launches; 0.4 s in a worker).
    Used for every kernel this package launches."""
    from jupyter_client.kernelspec import NATIVE_KERNEL_NAME, KernelSpecManager
    from jupyter_core.paths import jupyter_path

    lean = KernelSpecManager(kernel_dirs=jupyter_path("kernels"))
    if kernel_name == NATIVE_KERNEL_NAME or kernel_name in lean.find_kernel_specs():
        return lean
    return KernelSpecManager()


def _launch(key: KernelKey, extra_env: Mapping[str, str] | None = None) -> PooledKernel:
    """Start a kernel for ``key`` now (returns once the process runs, before the kernel is ready), with
    ``extra_env`` added to its environment (the attempt's context variable, when the attempt is known).

    Raises: whatever jupyter_client raises for an unknown kernelspec or a failed ``Popen``.
    """
    import psutil
    from jupyter_client.manager import KernelManager

    read_end, write_end = os.pipe()
    try:
        manager = KernelManager(
            kernel_name=key.kernel_name, kernel_spec_manager=kernelspec_manager(key.kernel_name)
        )
        env = {**dict(key.env), **(extra_env or {})}
        manager.start_kernel(cwd=key.cwd, env=env, stdout=write_end, stderr=write_end)
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    pid: int = manager.provisioner.process.pid  # type: ignore[union-attr]  # the local provisioner's Popen
    try:
        create_time: float | None = psutil.Process(pid).create_time()
    except psutil.Error:
        create_time = None
    raw: dict[str, Any] = dict(manager.get_connection_info(session=False))
    info = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in raw.items()}
    return PooledKernel(
        key, manager, AttachSpec(info, pid, create_time, launch_env=dict(extra_env or {})), read_end
    )


def _end(kernel: PooledKernel) -> None:
    """Shut ``kernel`` down now: SIGKILL to its process group (its output is saved or unwanted), reap it,
    remove its connection file. Not ``shutdown_kernel(now=True)``: that polls every 0.1 s until the process is
    gone, which made a run's exit wait 0.1 s per kernel."""
    kernel.close_output()
    with contextlib.suppress(OSError):
        os.killpg(kernel.pid, signal.SIGKILL)
    process = kernel.manager.provisioner.process if kernel.manager.provisioner else None
    try:
        if process is not None:
            process.wait(timeout=5)
    except Exception:  # not gone after SIGKILL (uninterruptible I/O): let jupyter_client try
        log.warning("pooled kernel %s did not exit after SIGKILL", kernel.pid, exc_info=True)
        with contextlib.suppress(Exception):
            kernel.manager.shutdown_kernel(now=True)
    with contextlib.suppress(Exception):
        kernel.manager.cleanup_resources()


class KernelPool:
    """Kernels launched ahead of need (see the module docstring). Thread-safe.

    Args:
        max_idle: idle kernels kept by :meth:`warm` over all keys; the oldest is shut down beyond it.
        idle_seconds: an idle kernel older than this is shut down (checked on every call and by :meth:`expire`).
        launcher: starts a kernel for a key and extra variables (tests count launches); default jupyter_client.
    """

    def __init__(
        self,
        *,
        max_idle: int = DEFAULT_MAX_IDLE,
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
        launcher: Callable[[KernelKey, Mapping[str, str] | None], PooledKernel] = _launch,
    ) -> None:
        self.max_idle = max_idle
        self.idle_seconds = idle_seconds
        self._launcher = launcher
        self._lock = threading.Lock()
        self._idle: OrderedDict[PooledKernel, None] = OrderedDict()  # oldest first
        self._taken: set[PooledKernel] = set()
        self._kept: list[PooledKernel] = []  # handed to a keeper: reaped once it ends them
        self._warming: Counter[KernelKey] = Counter()
        self._closed = False
        self._stop = threading.Event()
        self._expirer: threading.Thread | None = None  # started by the first warm(): idle kernels time out
        self._background = ThreadPoolExecutor(2, thread_name_prefix="orchestrate-kernel-pool")

    # -- for attempts ------------------------------------------------------------------------------------
    def take(self, key: KernelKey) -> PooledKernel | None:
        """An idle kernel launched for ``key`` (oldest first), now the caller's; None when there is none."""
        with self._lock:
            self._expire_locked()
            for kernel in self._idle:
                if kernel.key == key and kernel.manager.is_alive():
                    del self._idle[kernel]
                    self._taken.add(kernel)
                    return kernel
        return None

    def launch(self, key: KernelKey, extra_env: Mapping[str, str] | None = None) -> PooledKernel:
        """Launch a kernel for ``key`` now, for the caller (an idle one is taken instead when there is one,
        without ``extra_env``: the caller sets those variables in it after attaching).

        Raises: what jupyter_client raises when the kernel cannot be started (unknown kernelspec, ``Popen``).
        """
        kernel = self.take(key)
        if kernel is not None:
            return kernel
        kernel = self._launcher(key, extra_env)
        with self._lock:
            self._taken.add(kernel)
        return kernel

    def end(self, kernel: PooledKernel, *, kept: bool = False) -> None:
        """The attempt of a taken ``kernel`` is over: shut it down in the background, or, when a keeper took it
        (``kept``), only reap its process once the keeper ends it."""
        with self._lock:
            self._taken.discard(kernel)
            if kept:
                kernel.close_output()
                self._kept.append(kernel)
                return
        self._background.submit(_end, kernel)

    # -- warm kernels (a server) ----------------------------------------------------------------------------
    def warm(self, key: KernelKey, count: int = 1, extra_env: Mapping[str, str] | None = None) -> None:
        """Have ``count`` idle kernels for ``key`` (launched in the background), within :attr:`max_idle`;
        ``extra_env``: variables added at launch (:meth:`take` hands them out regardless)."""
        with self._lock:
            if self._closed:
                return
            if self._expirer is None:
                self._expirer = threading.Thread(
                    target=self._expire_loop, name="orchestrate-kernel-pool-expiry"
                )
                self._expirer.daemon = True
                self._expirer.start()
            have = sum(1 for k in self._idle if k.key == key) + self._warming[key]
            missing = max(min(count, self.max_idle) - have, 0)
            self._warming[key] += missing
        for _ in range(missing):
            self._background.submit(self._warm_one, key, extra_env)

    def _warm_one(self, key: KernelKey, extra_env: Mapping[str, str] | None) -> None:
        try:
            kernel = self._launcher(key, extra_env)
        except Exception:
            log.warning("could not start a warm %s kernel", key.kernel_name, exc_info=True)
            with self._lock:
                self._warming[key] -= 1
            return
        evicted: list[PooledKernel] = []
        with self._lock:
            self._warming[key] -= 1
            if self._closed:
                evicted.append(kernel)
            else:
                self._idle[kernel] = None
                while len(self._idle) > self.max_idle:
                    oldest = next(iter(self._idle))
                    del self._idle[oldest]
                    evicted.append(oldest)
        for stale in evicted:
            _end(stale)

    @property
    def idle_count(self) -> int:
        with self._lock:
            return len(self._idle)

    def _expire_loop(self) -> None:
        while not self._stop.wait(min(max(self.idle_seconds / 4, 0.05), 30.0)):
            self.expire()

    def expire(self) -> None:
        """Shut down idle kernels older than :attr:`idle_seconds` and reap kept ones that ended."""
        with self._lock:
            self._expire_locked()

    def _expire_locked(self) -> None:
        if self._closed:
            return
        now = time.monotonic()
        for kernel in [
            k for k in self._idle if now - k.launched > self.idle_seconds or not k.manager.is_alive()
        ]:
            del self._idle[kernel]
            self._background.submit(_end, kernel)
        for kernel in [k for k in self._kept if not k.manager.is_alive()]:
            self._kept.remove(kernel)
            self._background.submit(_end, kernel)

    def close(self) -> None:
        """Shut every idle and taken kernel down and wait for it (kept kernels are left to their keepers)."""
        self._stop.set()
        with self._lock:
            self._closed = True
            doomed = [*self._idle, *self._taken]
            self._idle.clear()
            self._taken.clear()
        for kernel in doomed:
            self._background.submit(_end, kernel)
        self._background.shutdown(wait=True)
