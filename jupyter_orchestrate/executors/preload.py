"""What the LocalExecutor's forkserver imports before the worker module: importing this module is its action
(multiprocessing's forkserver preload takes module names, not functions), so only the forkserver imports it.

It keeps jsonschema from importing ``rfc3987_syntax``, which compiles ~35 Earley grammars at import (1.6 s on
this machine, python-jsonschema/jsonschema#1428) to check the ``iri`` formats that no notebook schema uses.
nbformat (through papermill) imports jsonschema's format checkers, so every forkserver paid it before the first
attempt could start. jsonschema skips a checker whose library cannot be imported; nothing else changes.

It also imports IPython: jupyter_client's kernelspec lookup imports it to find IPython's folder, which cost
every attempt's worker 0.4 s after its fork (py-spy on a chain of 10).
"""

import sys

sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]  # None makes the import fail

import IPython  # noqa: E402,F401  # see the module docstring
