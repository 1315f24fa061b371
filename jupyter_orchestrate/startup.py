"""Start-up cost of the processes this package owns: the ``jupyter orchestrate`` command and the
LocalExecutor's forkserver (never a Jupyter server or a user's kernel, which import what they like).

Two optional imports of libraries we use cost more than everything else at start (PERFORMANCE.md, measured
with ``python -X importtime`` on this machine):

* jsonschema imports ``rfc3987_syntax`` to check the ``iri`` formats, and that compiles ~35 Earley grammars at
  import: 1.6 s (python-jsonschema/jsonschema#1428). nbformat (through papermill) imports jsonschema's
  format checkers; no notebook schema uses an ``iri`` format.
* sqlite-utils imports pandas and numpy when they are installed, to convert their values on insert: 1.2 s and
  0.06 s. The store never inserts such values.
* papermill's ``iorw`` imports boto3 (0.09 s here), and the Azure, GCS, HDFS (pyarrow) and GitHub clients when
  they are installed, for its remote paths. The worker reads and writes local notebooks only.

:func:`skip_unused_imports` makes those imports fail as if the library were absent, which each library
handles (it skips the optional feature); nothing else changes.
"""

from __future__ import annotations

import sys

#: module -> why this process does not need it; each library that imports it treats ImportError as "absent"
UNUSED_OPTIONAL_IMPORTS = {
    "rfc3987_syntax": "jsonschema's iri format checker (no notebook schema uses it)",
    "pandas": "sqlite-utils' conversion of pandas values (the store inserts none)",
    "numpy": "sqlite-utils' conversion of numpy values (the store inserts none)",
    "boto3": "papermill's s3:// paths (the worker passes local paths)",
    "azure": "papermill's adl:// and abs:// paths",
    "gcsfs": "papermill's gs:// paths",
    "pyarrow": "papermill's hdfs:// paths",
    "github": "papermill's GitHub paths",
}


def skip_unused_imports(names: tuple[str, ...] = tuple(UNUSED_OPTIONAL_IMPORTS)) -> None:
    """Make ``import NAME`` raise ImportError in this process, for each of ``names`` not imported yet.

    Call it first thing in a process this package owns, never in a shared one (a server, a kernel, pytest).
    """
    for name in names:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None: the import machinery raises


def _skip_final_collection() -> None:
    import gc

    gc.disable()
    gc.freeze()


def end_without_final_collection() -> None:
    """At this process's exit, skip the garbage collector's passes over the objects still alive (issue 15:
    ~0.1-0.2 s at the end of every ``run``, and as long again for its forkserver, whose end a caller reading
    the command's output waits for: it holds the same stdout).

    Call it first thing: :mod:`atexit` runs handlers last-registered first, so it runs after the handlers
    registered later (logging's flush, multiprocessing's and weakref finalizers registered after it, the
    executor's cleanup). What it gives up: objects kept alive only by reference cycles (which includes what a
    ``__main__`` function's globals hold) are left to the operating system unfinalized, so a buffered file held
    that way would lose its buffer. This package closes its executor, notifier, stores and files explicitly
    before the command returns (``cli._execute``'s ``finally``), and its SQLite commits are durable on their own.
    """
    import atexit

    atexit.register(_skip_final_collection)


def own_process() -> None:
    """What a process this package owns does first (the command, the forkserver; never a shared one):
    :func:`skip_unused_imports`, then :func:`end_without_final_collection`."""
    skip_unused_imports()
    end_without_final_collection()


def entry() -> None:
    """The ``jupyter orchestrate`` / ``python -m jupyter_orchestrate`` process: :func:`~.cli.main`, after
    :func:`own_process` (a process of our own; tests call ``main`` in theirs).

    It lives here, not in :mod:`.cli`, so that ``run`` and ``repair`` start the forkserver before click, rich
    and the models are imported: its ~0.7 s of imports then use the second core while this process imports
    (issue 15's time to first task start).
    """
    own_process()
    if {"run", "repair"} & set(sys.argv[1:4]):  # the command (after at most --home HOME)
        from jupyter_orchestrate.executors import forkserver

        forkserver.start_in_background()
    from jupyter_orchestrate.cli import main

    main()
