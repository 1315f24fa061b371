"""jupyter-orchestrate: tagged notebooks become jobs that run as parallel papermill DAGs.

Importing the package is cheap on purpose: notebooks import :mod:`jupyter_orchestrate.task_values` inside
their kernels, so nothing heavy (papermill, pydantic, sqlite) is imported here.
"""

__version__ = "0.1.0"
__all__ = ["Job", "Run", "__version__"]


def __getattr__(name: str) -> object:
    """``Job`` and ``Run`` (the Python API) load on first use, so that importing ``task_values`` in a kernel
    stays cheap."""
    if name in ("Job", "Run"):
        from jupyter_orchestrate import api

        return getattr(api, name)
    raise AttributeError(f"module 'jupyter_orchestrate' has no attribute {name!r}")


def _jupyter_server_extension_points() -> list[dict[str, object]]:
    """Entry point of the Jupyter server extension (enabled by ``jupyter-config/server-config``)."""
    from jupyter_orchestrate.server.app import OrchestrateApp

    return [{"module": "jupyter_orchestrate.server.app", "app": OrchestrateApp}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where the built JupyterLab extension is (for ``jupyter labextension develop``)."""
    return [{"src": "labextension", "dest": "jupyter-orchestrate"}]
