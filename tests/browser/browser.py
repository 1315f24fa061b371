"""What every browser test module imports: Playwright's API (or, without Playwright or Chromium, a skip that says
how to get them; under CI a failure, since ``.ci/run`` installs both), the sidebar's selector and the small page
helpers the tests share. Importing this module from a test module skips or fails that module as a whole."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .conftest import CHROMIUM

try:
    from playwright.sync_api import Browser, Locator, Page, expect
    from playwright.sync_api import Error as PlaywrightError
except ImportError:  # pragma: no cover - depends on the machine
    if os.environ.get("CI"):
        pytest.fail("playwright is not installed; `pip install -e .[test]` installs it", pytrace=False)
    pytest.skip("playwright is not installed (pip install -e '.[test]')", allow_module_level=True)

if not Path(CHROMIUM).exists():  # pragma: no cover - depends on the machine
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing; .ci/run installs Debian's chromium package", pytrace=False)
    pytest.skip(
        f"{CHROMIUM} is missing (apt-get install -y chromium); `playwright install` cannot fetch browsers here",
        allow_module_level=True,
    )

# assertions retry up to 15 s (Playwright's default is 5 s), for busy CI machines
expect.set_options(timeout=15_000)

SIDEBAR = "#jupyter-orchestrate-sidebar"

__all__ = [
    "SIDEBAR",
    "Browser",
    "Locator",
    "Page",
    "PlaywrightError",
    "benchmark_module",
    "expect",
    "load_lab",
    "open_sidebar",
    "settle",
]


def open_sidebar(page: Page) -> Locator:
    """Show the Orchestrate sidebar (click its tab unless it is already open) and return it."""
    tab = page.locator('li[data-id="jupyter-orchestrate-sidebar"]')
    expect(tab, "the Orchestrate tab is missing: is the labextension installed?").to_be_visible()
    sidebar = page.locator(SIDEBAR)
    if not sidebar.is_visible():
        tab.click()
    expect(sidebar).to_be_visible()
    return sidebar


def settle(page: Page) -> None:
    """Wait two animation frames and 300 ms, so a screenshot or a layout measure sees the final render."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    page.wait_for_timeout(300)


def load_lab(page: Page, server: Any) -> None:
    """Open JupyterLab of ``server`` (a :class:`~.conftest.LabServer`) and wait until it started and its splash
    screen went away (up to 90 s each, for busy machines)."""
    page.goto(f"{server.url}/lab?token={server.token}")
    page.wait_for_function(
        "() => window.jupyterapp && window.jupyterapp.started !== undefined", timeout=90_000
    )
    page.evaluate("() => window.jupyterapp.started")
    page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=90_000)


def benchmark_module(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` imported (the benchmarks are scripts, not a package; their siblings are found
    while it loads), for tests that build their fixtures with a benchmark's code."""
    folder = Path(__file__).resolve().parents[2] / "benchmarks"
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module
