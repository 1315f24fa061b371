"""What the LocalExecutor's forkserver imports before the worker module: importing this module is its action
(multiprocessing's forkserver preload takes module names, not functions), so only the forkserver imports it.

* :func:`~jupyter_orchestrate.startup.skip_unused_imports`: 1.6 s of jsonschema's ``rfc3987_syntax`` grammar
  build, and pandas, before papermill imports nbformat.
* IPython: jupyter_client's kernelspec lookup imports it to find IPython's folder, which cost every attempt's
  worker 0.4 s after its fork (py-spy on a chain of 10).
* nbformat's validators of the common notebook versions (fastjsonschema compiles each, 0.07 s, in every worker
  that reads a notebook otherwise).
"""

from jupyter_orchestrate.startup import skip_unused_imports

skip_unused_imports()

import IPython  # noqa: E402,F401  # see the module docstring
import nbformat.validator  # noqa: E402

for _minor in (4, 5):
    nbformat.validator.get_validator(version=4, version_minor=_minor)  # type: ignore[no-untyped-call]
