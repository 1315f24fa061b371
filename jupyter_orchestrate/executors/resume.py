"""Resume from the failed cell: which cells of a failed attempt are reused, whether they changed since, and the
notebook a resumed attempt executes. Plain JSON (no nbformat, no papermill), so the service can check a
resume before any process starts, and the worker builds what it executes with the same rules.

Cell indexes: ``cell_index`` is an index into the *input* notebook as the user saved it (what errors report);
an executed notebook has papermill's injected-parameters cell and, after a failure, error-marker cells too,
so its cells are mapped back to input cells by :func:`input_index`.
"""

from __future__ import annotations

import copy
import json
from typing import Any

#: papermill's tag of the cell with the parameters it injected.
INJECTED_TAG = "injected-parameters"
#: papermill's tag of the marker cells it adds before a failed cell (``papermill.execute.ERROR_MARKER_TAG``).
ERROR_MARKER_TAG = "papermill-error-cell-tag"
#: cell metadata key of what jupyter-orchestrate records about a cell of an executed notebook.
METADATA_KEY = "jupyter_orchestrate"


def tagged(cell: Any, tag: str) -> bool:
    """Whether the cell (a dict or NotebookNode) carries ``tag``."""
    return tag in (cell.get("metadata", {}).get("tags") or [])


def read_cells(path: str) -> list[dict[str, Any]]:
    """The cells of a notebook file ([] if it cannot be read or is not a notebook)."""
    try:
        with open(path, encoding="utf-8") as f:
            cells = json.load(f).get("cells", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [c for c in cells if isinstance(c, dict)] if isinstance(cells, list) else []


def source_text(cell: dict[str, Any]) -> str:
    """A cell's source as one string (nbformat allows a list of lines)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def own_cells(cells: list[Any]) -> list[int]:
    """Indexes of the cells the user wrote: neither papermill's error markers nor an injected-parameters cell."""
    return [i for i, c in enumerate(cells) if not tagged(c, ERROR_MARKER_TAG) and not tagged(c, INJECTED_TAG)]


def input_index(executing_cells: list[Any], input_cells: list[dict[str, Any]]) -> list[int | None]:
    """For each cell of a notebook papermill executes (or executed), its index in the input notebook (None for
    the injected-parameters cell and for error markers).

    papermill executes the input without the error-marker cells of an earlier papermill run and with a fresh
    injected-parameters cell (replacing an old one in place), so counting cells or error outputs goes wrong
    for an input that is itself an executed notebook. Cells are matched by cell id; by position among the
    input's own cells (:func:`own_cells`) only where an id is missing or new (a 4.4 notebook, or one papermill
    upgraded to give ids while saving an error).
    """
    by_id = {c.get("id"): i for i, c in enumerate(input_cells) if c.get("id")}
    own = own_cells(input_cells)
    mapped: list[int | None] = []
    position = 0
    for cell in executing_cells:
        if tagged(cell, INJECTED_TAG) or tagged(cell, ERROR_MARKER_TAG):
            mapped.append(None)
            continue
        index = by_id.get(cell.get("id"))
        if index is None and position < len(own):
            index = own[position]
        mapped.append(index)
        position += 1
    return mapped


def _is_code(cell: dict[str, Any]) -> bool:
    return cell.get("cell_type") == "code" and bool(source_text(cell).strip())


def changed_before(input_path: str, failed_notebook_path: str, from_cell_index: int) -> list[int]:
    """Input cells before ``from_cell_index`` whose code differs from what the failed attempt executed.

    Compares, for every code cell of the input notebook (as it is now on disk) before the failed cell, its
    source with the executed cell mapped to it; a code cell added, removed or edited there counts. Markdown
    and empty cells do not (they change no kernel state).

    Returns: the changed cells' input indexes (sorted); [] when the kernel state matches the notebook.
    Raises: ValueError when either notebook cannot be read.
    """
    current = read_cells(input_path)
    executed = [c for c in read_cells(failed_notebook_path) if not tagged(c, ERROR_MARKER_TAG)]
    if not current or not executed:
        raise ValueError(f"cannot read {input_path if not current else failed_notebook_path}")
    mapped = input_index(executed, current)
    ran: dict[int, str] = {}
    for cell, index in zip(executed, mapped, strict=True):
        if index is None or tagged(cell, INJECTED_TAG):
            continue
        if index >= from_cell_index:
            continue
        if _is_code(cell):
            ran[index] = source_text(cell)
    changed = []
    for index in range(min(from_cell_index, len(current))):
        cell = current[index]
        if tagged(cell, INJECTED_TAG) or tagged(cell, ERROR_MARKER_TAG):
            continue
        if _is_code(cell):
            if ran.pop(index, None) != source_text(cell):
                changed.append(index)
        elif index in ran:
            ran.pop(index)
            changed.append(index)
    # what is left ran, but its input cell is gone
    return sorted(set(changed) | set(ran))


def resume_notebook(
    input_path: str,
    failed_notebook_path: str,
    from_cell_index: int,
    *,
    failed_attempt_number: int,
    parameters_source: str | None = None,
) -> tuple[dict[str, Any], int]:
    """The notebook a resumed attempt executes, and how many code cells it reuses.

    Cells: the failed attempt's executed cells before the failed one (with their outputs and execution counts,
    marked ``metadata.jupyter_orchestrate.reused_from_attempt``), then, when ``parameters_source`` is given, a
    cell tagged ``injected-parameters`` with the resume's parameter overrides, then the input notebook's cells
    (as it is now on disk) from ``from_cell_index`` on. Notebook metadata come from the input.

    Raises: ValueError when a notebook cannot be read or ``from_cell_index`` is not a cell of the input.
    """
    try:
        with open(input_path, encoding="utf-8") as f:
            notebook = json.load(f)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {input_path}: {exc}") from exc
    current = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(current, list) or not 0 <= from_cell_index < len(current):
        raise ValueError(f"{input_path} has no cell {from_cell_index + 1} to resume from")
    executed = [c for c in read_cells(failed_notebook_path) if not tagged(c, ERROR_MARKER_TAG)]
    if not executed:
        raise ValueError(f"cannot read the failed attempt's notebook {failed_notebook_path}")
    mapped = input_index(executed, current)
    cut = next(
        (i for i, index in enumerate(mapped) if index is not None and index >= from_cell_index), len(executed)
    )
    reused = []
    for cell in executed[:cut]:
        cell = copy.deepcopy(cell)
        cell.setdefault("metadata", {}).setdefault(METADATA_KEY, {})["reused_from_attempt"] = (
            failed_attempt_number
        )
        reused.append(cell)
    cells = list(reused)
    if parameters_source:
        cells.append(
            {
                "cell_type": "code",
                "id": f"resume-parameters-{failed_attempt_number}",
                "metadata": {"tags": [INJECTED_TAG], METADATA_KEY: {"resume_parameters": True}},
                "execution_count": None,
                "outputs": [],
                "source": parameters_source,
            }
        )
    cells.extend(
        copy.deepcopy(c)
        for c in current[from_cell_index:]
        if not tagged(c, ERROR_MARKER_TAG) and not tagged(c, INJECTED_TAG)
    )
    notebook["cells"] = cells
    return notebook, sum(1 for c in reused if _is_code(c) and not tagged(c, INJECTED_TAG))


def is_reused(cell: Any) -> bool:
    """Whether a cell of a resume notebook was copied from the failed attempt (not to be executed again)."""
    meta = cell.get("metadata", {}).get(METADATA_KEY) or {}
    return "reused_from_attempt" in meta
