"""The code's shape: no import cycles (lazy imports included), no function over 60 lines, the CLI on top, the
planner registry read by every surface."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "dreamomni2"
MAX_FUNCTION_LINES = 60


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in SRC.rglob("*.py")}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The innermost package module ``name`` refers to (``a.b.C`` -> ``a.b``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every dreamomni2 module ``module`` imports, at module level or inside functions (lazy imports)."""
    out: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            names = [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            target = _resolve(name, modules) if name.startswith("dreamomni2") else None
            if target and target != module:
                out.add(target)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(m, p, modules) for m, p in modules.items()}


def test_no_import_cycles_lazy_imports_included():
    graph = _graph()
    assert len(graph) > 40 and graph["dreamomni2.session"]  # the scan sees the package
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_library_module_imports_the_cli():
    offenders = [m for m, deps in _graph().items() if not m.startswith("dreamomni2.cli") and any(
        d.startswith("dreamomni2.cli") for d in deps)]  # fmt: skip
    assert offenders == []


def test_no_function_over_60_lines():
    long = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({n} lines)")
    assert long == []


def test_planner_registry_feeds_every_surface(capsys):
    from dreamomni2.cli import build_parser
    from dreamomni2.planner import make_planner, planner_backends
    from dreamomni2.planner.factory import planner_choices

    backends = planner_backends()
    assert list(backends)[:1] == ["none"] and {"none", "mini", "qwen", "openai"} <= set(backends)
    assert backends["openai"].network and not backends["qwen"].network and not backends["mini"].network
    assert planner_choices() == " | ".join(b.usage for b in backends.values())
    for command in ("edit", "bench"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        assert "openai:URL[#model]" in capsys.readouterr().out
    assert make_planner("mini").backend == "mini"


def test_a_new_backend_is_one_registration():
    from dreamomni2.planner import NonePlanner, PlannerBackend, make_planner, register_planner
    from dreamomni2.planner.registry import _BACKENDS

    class Echo(NonePlanner):
        backend = "echo"

    try:
        register_planner(PlannerBackend("echo", "echo:WORD", "test backend", lambda arg, **_: Echo(), takes_arg=True))
        assert make_planner("echo:x").backend == "echo"
        with pytest.raises(ValueError, match="already registered"):
            register_planner(PlannerBackend("echo", "echo", "another", lambda **_: Echo()))
        with pytest.raises(ValueError, match="Bad planner spec 'echo'"):
            make_planner("echo")
    finally:
        _BACKENDS.pop("echo", None)


def test_task_names_and_image_limit_live_in_one_module():
    import dreamomni2.pipeline as pipeline
    import dreamomni2.planner.base as planner_base
    from dreamomni2 import tasks

    assert pipeline.TASKS is tasks.TASKS and planner_base.normalize_task is tasks.normalize_task
    assert pipeline.DreamOmni2Pipeline.max_images == tasks.MAX_IMAGES == 5
    assert [tasks.normalize_task(t) for t in ("EDIT", "editing", "Generation")] == ["edit", "edit", "generate"]
    literal = [p for p in SRC.rglob("*.py") if '"editing": "edit"' in p.read_text() and p.name != "tasks.py"]
    assert literal == []
