"""The benchmarks' child-process code imports what exists: `make bench` runs it only
there, so a moved function (run_worker once left agents.worker) breaks no other test."""

from __future__ import annotations

import ast
import importlib

import pytest

from benchmarks import pipeline_bench

CHILD_CODE = {"pipeline_bench.WORKER_CODE": pipeline_bench.WORKER_CODE}


@pytest.mark.parametrize("name", sorted(CHILD_CODE))
def test_child_process_code_imports_resolve(name: str) -> None:
    tree = ast.parse(CHILD_CODE[name])
    imports = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert imports
    for node in imports:
        assert node.module is not None
        module = importlib.import_module(node.module)
        for alias in node.names:
            assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"
