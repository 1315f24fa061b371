"""The task DAG: cycle check, topological order, upstream and downstream sets (on top of :mod:`graphlib`)."""

from __future__ import annotations

import functools
import graphlib
import itertools
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
        return self._keys(self._upstream_masks[self._index[key]])

    def downstream_of(self, keys: Iterable[str]) -> set[str]:
        """Every task that depends, directly or indirectly, on any of ``keys`` (``keys`` excluded)."""
        mask = 0
        for key in keys:
            mask |= self._downstream_masks[self._index[key]]
        return self._keys(mask)

    def leaves(self) -> list[str]:
        """Tasks nothing depends on, in topological order."""
        return [k for k in self.order if not self.downstream[k]]

    # The closures are bit sets over ``order`` positions, built once in one pass in topological order: a
    # walk per call cost a 1,000-task chain half a million steps when every task asked for its upstream
    # (validation of parameter references, every attempt's context).
    @functools.cached_property
    def _index(self) -> dict[str, int]:
        return {key: i for i, key in enumerate(self.order)}

    @functools.cached_property
    def _upstream_masks(self) -> list[int]:
        index, masks = self._index, [0] * len(self.order)
        for i, key in enumerate(self.order):  # upstream tasks come first: their masks are complete
            for dep in self.depends_on[key]:
                j = index[dep]
                masks[i] |= masks[j] | (1 << j)
        return masks

    @functools.cached_property
    def _downstream_masks(self) -> list[int]:
        index, masks = self._index, [0] * len(self.order)
        for i in reversed(range(len(self.order))):
            for child in self.downstream[self.order[i]]:
                j = index[child]
                masks[i] |= masks[j] | (1 << j)
        return masks

    def _keys(self, mask: int) -> set[str]:
        # bit i of mask is self.order[i]; the reversed binary text as bytes is one selector per position, a
        # zero byte where the bit is 0 (a C loop: iterating the bits in Python cost more than the walk)
        selectors = bin(mask)[:1:-1].encode("ascii").replace(b"0", b"\x00")
        return set(itertools.compress(self.order, selectors))
