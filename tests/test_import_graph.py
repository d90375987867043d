"""The module import graph of chemtomo has no cycle.

import-linter's contracts (pyproject.toml, ``make lint``) check the layering between
subpackages; this test checks every module against every other, imports inside functions
included, so that two modules of the same subpackage cannot import each other either.
"""

from __future__ import annotations

import pytest

grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter, in the dev extra (make installs it)")


def _strongly_connected_components(edges: dict[str, set[str]]) -> list[set[str]]:
    """Return the strongly connected components of a directed graph (Tarjan, iterative).

    Parameters
    ----------
    edges : dict of str to set of str
        Each node's direct successors; every successor is also a key.

    Returns
    -------
    list of set of str
        The components, each a set of nodes.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[set[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(edges[succ]))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def test_scc_finds_a_cycle_and_nothing_else():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    multi = [c for c in _strongly_connected_components(edges) if len(c) > 1]
    assert multi == [{"a", "b", "c"}]


def test_no_import_cycle_between_modules():
    graph = grimp.build_graph("chemtomo", cache_dir=None)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) & graph.modules for m in graph.modules}
    cycles = {frozenset(c) for c in _strongly_connected_components(edges) if len(c) > 1}
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in cycles)
