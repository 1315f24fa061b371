"""Dag: upstream and downstream closures on DAGs of every shape agree with a plain walk of the edges."""

from __future__ import annotations

import random

import pytest

from jupyter_orchestrate.dag import CycleError, Dag, UnknownDependencyError


def walk(start: str, edges: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(edges[start])
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(edges[node])
    return seen


@pytest.mark.parametrize("seed", range(5))
def test_closures_match_a_walk_of_the_edges(seed: int) -> None:
    rnd = random.Random(seed)
    keys = [f"t{i:03d}" for i in range(200)]
    rnd.shuffle(keys)  # names out of topological order: bit positions follow the order, not the names
    depends_on = {k: rnd.sample(keys[:i], min(i, rnd.randint(0, 3))) for i, k in enumerate(keys)}
    dag = Dag(depends_on)
    downstream: dict[str, list[str]] = {k: [] for k in keys}
    for key, deps in depends_on.items():
        for dep in deps:
            downstream[dep].append(key)
    for key in keys:
        assert dag.upstream_of(key) == walk(key, depends_on)
    for _ in range(50):
        chosen = rnd.sample(keys, rnd.randint(0, 4))
        expected = set().union(*(walk(k, downstream) for k in chosen))
        assert dag.downstream_of(chosen) == expected


def test_a_chain_a_diamond_and_errors() -> None:
    dag = Dag({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]})
    assert dag.order == ["a", "b", "c", "d"]
    assert dag.upstream_of("d") == {"a", "b", "c"} and dag.upstream_of("a") == set()
    assert dag.downstream_of(["b"]) == {"d"} and dag.downstream_of(["a"]) == {"b", "c", "d"}
    assert dag.leaves() == ["d"]
    with pytest.raises(KeyError):
        dag.upstream_of("nope")
    with pytest.raises(CycleError, match=r"a -> b -> a|b -> a -> b"):
        Dag({"a": ["b"], "b": ["a"]})
    with pytest.raises(UnknownDependencyError):
        Dag({"a": ["x"]})
