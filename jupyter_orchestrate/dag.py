"""The task DAG: cycle check, topological order, upstream and downstream sets (on top of :mod:`graphlib`)."""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Mapping

from jupyter_orchestrate.errors import OrchestrateError


class CycleError(OrchestrateError, ValueError):
    """The dependencies form a cycle; ``cycle`` lists it with the first task repeated at the end."""

    def __init__(self, cycle: list[str]):
        self.cycle = cycle
        super().__init__("dependency cycle: " + " -> ".join(cycle))


class UnknownDependencyError(OrchestrateError, KeyError):
    """A dependency names a task that is not in the DAG (a ``KeyError`` too, as before); ``task_key`` is the
    dependent task, ``dependency`` the unknown key."""

    def __init__(self, task_key: str, dependency: str):
        self.task_key = task_key
        self.dependency = dependency
        super().__init__(f"{task_key} depends on unknown task {dependency}")


class Dag:
    """A DAG given as ``{task_key: [upstream task_key, ...]}``.

    Raises:
        CycleError: the graph has a cycle (a self dependency is the cycle ``a -> a``).
        UnknownDependencyError: a dependency names a task that is not in the mapping (a ``KeyError``).
    """

    def __init__(self, depends_on: Mapping[str, Iterable[str]]):
        self.depends_on: dict[str, list[str]] = {k: list(v) for k, v in depends_on.items()}
        for key, deps in self.depends_on.items():
            for dep in deps:
                if dep not in self.depends_on:
                    raise UnknownDependencyError(key, dep)
        # sorted insertion makes the order deterministic: alphabetical among tasks that are ready together
        sorter = graphlib.TopologicalSorter({k: sorted(self.depends_on[k]) for k in sorted(self.depends_on)})
        try:
            order = list(sorter.static_order())
        except graphlib.CycleError as exc:
            # graphlib lists the cycle so that each node is upstream of the next: flow order.
            raise CycleError(list(exc.args[1])) from None
        self.order: list[str] = order
        self.downstream: dict[str, list[str]] = {k: [] for k in self.depends_on}
        for key, deps in self.depends_on.items():
            for dep in deps:
                self.downstream[dep].append(key)

    def upstream_of(self, key: str) -> set[str]:
        """Every task ``key`` depends on, directly or indirectly."""
        return self._closure(key, self.depends_on)

    def downstream_of(self, keys: Iterable[str]) -> set[str]:
        """Every task that depends, directly or indirectly, on any of ``keys`` (``keys`` excluded)."""
        result: set[str] = set()
        for key in keys:
            result |= self._closure(key, self.downstream)
        return result

    def leaves(self) -> list[str]:
        """Tasks nothing depends on, in topological order."""
        return [k for k in self.order if not self.downstream[k]]

    @staticmethod
    def _closure(start: str, edges: Mapping[str, list[str]]) -> set[str]:
        seen: set[str] = set()
        stack = list(edges[start])
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(edges[node])
        return seen
