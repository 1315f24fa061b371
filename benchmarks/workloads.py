"""The benchmark workloads of issue 15: DAGs of small parameterised notebooks, the same notebooks as the shared
``bench/make_notebooks.py`` that the issue's figures were measured with, plus ``metadata.orchestrate`` so that
each folder is also a job.

Each notebook: a markdown cell, a ``parameters`` cell (``upstream``, ``product``, ``sleep_s``: the ploomber
convention), and three code cells (imports, a small sum and ``time.sleep(sleep_s)``, a JSON print).

:func:`write_workload` writes ``<folder>/<task>.ipynb`` for every task, ``dag.json`` (tasks, upstream lists,
topological order), ``pipeline-parallel.yaml`` (ploomber, Parallel(processes=2)) and ``order.txt``.
"""

from __future__ import annotations

import json
from pathlib import Path

#: workload -> {task: [upstream tasks]}, in the order the tasks are written (topological).
WORKLOADS: dict[str, dict[str, list[str]]] = {
    "chain-10": {f"chain_{i:02d}": [f"chain_{i - 1:02d}"] if i else [] for i in range(10)},
    "fanout-8": {
        "fan_root": [],
        **{f"fan_mid_{i}": ["fan_root"] for i in range(8)},
        "fan_join": [f"fan_mid_{i}" for i in range(8)],
    },
    "wide-40": {f"wide_{i:02d}": [] for i in range(40)},
    "sleep-chain": {f"sleep_{i}": [f"sleep_{i - 1}"] if i else [] for i in range(5)},
}
#: seconds each notebook of a workload sleeps in its second code cell
SLEEP_SECONDS = {"sleep-chain": 1.0}


def _cell(kind: str, source: str, index: int, tags: list[str] | None = None) -> dict:
    cell: dict = {
        "cell_type": kind,
        "id": f"c{index}",
        "metadata": {"tags": tags} if tags else {},
        "source": source,
    }
    if kind == "code":
        cell.update(outputs=[], execution_count=None)
    return cell


def notebook(name: str, upstream: list[str], sleep_s: float) -> dict:
    """The nbformat 4.5 JSON of task ``name`` (cells as in ``bench/make_notebooks.py``)."""
    params = (
        "# Parameters (ploomber reads `upstream`; papermill/ploomber inject below)\n"
        f"upstream = {upstream!r}\n".replace("upstream = []", "upstream = None")
        + "product = None\n"
        + f"sleep_s = {sleep_s!r}"
    )
    sources = [
        ("markdown", f"# {name}\nTiny benchmark notebook.", None),
        ("code", params, ["parameters"]),
        ("code", "import json\nimport time", None),
        ("code", "x = sum(i * i for i in range(10_000))\ntime.sleep(sleep_s)\nx", None),
        ("code", f"print(json.dumps({{'task': {name!r}, 'x': x, 'upstream': upstream}}))", None),
    ]
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
            "orchestrate": {"task_key": name, "depends_on": list(upstream)},
        },
        "cells": [_cell(kind, src, i, tags) for i, (kind, src, tags) in enumerate(sources)],
    }


def write_workload(name: str, folder: Path) -> dict:
    """Write workload ``name`` into ``folder`` (created). Returns the ``dag.json`` document:
    ``{"workload", "tasks": [{"name", "source", "upstream"}], "order": [...]}``.

    Raises: KeyError for an unknown workload name.
    """
    tasks = WORKLOADS[name]
    sleep_s = SLEEP_SECONDS.get(name, 0.0)
    folder.mkdir(parents=True, exist_ok=True)
    for task, upstream in tasks.items():
        (folder / f"{task}.ipynb").write_text(json.dumps(notebook(task, upstream, sleep_s), indent=1))
    dag = {
        "workload": name,
        "tasks": [{"name": t, "source": f"{t}.ipynb", "upstream": u} for t, u in tasks.items()],
        "order": list(tasks),
    }
    (folder / "dag.json").write_text(json.dumps(dag, indent=1))
    (folder / "order.txt").write_text("\n".join(tasks) + "\n")
    lines = ["executor:", "  dotted_path: ploomber.executors.Parallel", "  processes: 2", "", "tasks:"]
    for task in tasks:
        lines += [f"  - source: {task}.ipynb", f"    product: out/{task}.ipynb"]
    (folder / "pipeline-parallel.yaml").write_text("\n".join(lines) + "\n")
    return dag
