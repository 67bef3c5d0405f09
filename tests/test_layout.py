"""The house's rules, checked: one installed name, floors without cycles, no arrow from the
core to the application or between recorders and analysis, and a requires-python that the
code keeps."""

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import landscape

ROOT = Path(__file__).resolve().parents[1]
ROOMS = {
    "landscape.app": ROOT / "landscape" / "app",
    "landscape.recorders": ROOT / "recorders",
    "landscape.analysis": ROOT / "analysis",
}


def modules():
    """{module name: path} of every source file of the package."""
    out = {}
    for name, folder in ROOMS.items():
        for p in folder.glob("*.py"):
            out[name if p.stem == "__init__" else f"{name}.{p.stem}"] = p
    for p in (ROOT / "landscape").glob("*.py"):
        out["landscape" if p.stem == "__init__" else f"landscape.{p.stem}"] = p
    return out


def imports(name: str, path: Path) -> set[str]:
    """The package modules that `name` imports (at any level of the file)."""
    pkg = name if path.stem == "__init__" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    known = modules()
    return {m for m in found if m in known and m != name}


def room(mod: str) -> str:
    if mod == "landscape.__main__":  # `python -m landscape`: the command's entry point
        return "landscape.app"
    for r in ROOMS:
        if mod == r or mod.startswith(r + "."):
            return r
    return "core"


def test_no_arrow_from_the_core_up_and_none_between_recorders_and_analysis():
    allowed = {
        "core": {"core"},
        "landscape.recorders": {"core", "landscape.recorders"},
        "landscape.analysis": {"core", "landscape.analysis"},
        "landscape.app": {"core", "landscape.recorders", "landscape.analysis", "landscape.app"},
    }
    bad = []
    for name, path in modules().items():
        for dep in imports(name, path):
            if room(dep) not in allowed[room(name)]:
                bad.append(f"{name} -> {dep}")
    assert not bad, bad


def test_no_import_cycles():
    graph = {name: imports(name, path) for name, path in modules().items()}
    graph = {k: {d for d in v if d not in ("landscape",) and not k.startswith(d + ".")} for k, v in graph.items()}
    state: dict[str, int] = {}

    def visit(n, stack):
        state[n] = 1
        for d in graph.get(n, ()):
            if state.get(d) == 1:
                raise AssertionError("cycle: " + " -> ".join(stack[stack.index(d) :] + [d]))
            if d not in state:
                visit(d, stack + [d])
        state[n] = 2

    for n in graph:
        if n not in state:
            visit(n, [n])


def test_one_installed_top_level_name():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pkgs = cfg["tool"]["setuptools"]["packages"]
    assert {p.split(".")[0] for p in pkgs} == {"landscape"}
    import landscape.analysis
    import landscape.recorders

    assert Path(landscape.recorders.__file__).parent == ROOT / "recorders"
    assert Path(landscape.analysis.__file__).parent == ROOT / "analysis"


def test_one_version_source():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in cfg["project"] and "version" in cfg["project"]["dynamic"]
    assert metadata.version("landscape") == landscape.__version__
    assert f"## {landscape.__version__}" in (ROOT / "CHANGELOG.md").read_text()


def test_requires_python_is_what_the_code_needs():
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    low = tuple(int(x) for x in re.fullmatch(r">=\s*(\d+)\.(\d+)", spec).groups())
    assert sys.version_info[:2] >= low
    # standard-library modules newer than the stated minimum would break installs on it
    newer = {"tomllib": (3, 11)}
    for name, path in modules().items():
        text = path.read_text()
        for mod, since in newer.items():
            if re.search(rf"^\s*import {mod}\b|^\s*from {mod} import", text, flags=re.M):
                assert low >= since, f"{name} imports {mod} (Python {since}), but requires-python is {spec}"


def test_no_backend_chosen_and_no_optional_dependency_needed_to_record():
    code = "\n".join(p.read_text() for p in modules().values())
    assert "matplotlib.use(" not in code and "import matplotlib.pyplot" not in code
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    required = " ".join(cfg["project"]["dependencies"])
    for opt in ("matplotlib", "h5py", "distributed", "scipy"):
        assert opt not in required
