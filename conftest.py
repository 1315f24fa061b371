"""Repository-level pytest configuration.

``pytest-jupyter`` does not register itself through a ``pytest11`` entry point, and pytest only honours
``pytest_plugins`` in the top-level conftest, so the Jupyter server fixtures (``jp_serverapp``, ``jp_fetch``,
...) used by ``tests/server`` are enabled here.
"""

pytest_plugins = ["pytest_jupyter.jupyter_server"]
