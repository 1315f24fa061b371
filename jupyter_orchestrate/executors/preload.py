"""What the LocalExecutor's forkserver imports before the worker module: importing this module is its action
(multiprocessing's forkserver preload takes module names, not functions), so only the forkserver imports it.
It calls :func:`~jupyter_orchestrate.startup.own_process`:

* :func:`~jupyter_orchestrate.startup.skip_unused_imports`: 1.6 s of jsonschema's ``rfc3987_syntax`` grammar
  build, and pandas, before papermill imports nbformat.
* :func:`~jupyter_orchestrate.startup.end_without_final_collection`: the forkserver ends in ~0.01 s instead
  of ~0.1 s after its orchestrator (a caller that reads the orchestrator's output waits for it: it holds the
  same stdout). The forkserver only forks; its children end with ``os._exit`` and never run it.
* nbformat's validators of the common notebook versions (fastjsonschema compiles each, 0.07 s, in every worker
  that reads a notebook otherwise).

Not IPython (0.4 s here): the kernels are launched with :func:`~.kernel_pool.kernelspec_manager`, which does
not import it to search IPython's kernels folder.
"""

from jupyter_orchestrate.startup import own_process

own_process()

import nbformat.validator  # noqa: E402

for _minor in (4, 5):
    nbformat.validator.get_validator(version=4, version_minor=_minor)  # type: ignore[no-untyped-call]
