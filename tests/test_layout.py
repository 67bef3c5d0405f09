"""The house's rules, checked: one installed name, floors without cycles, rooms that import
one way (the core's rooms among themselves, the core never up into the application, recorders
and analysis never into each other), and a requires-python that the code keeps."""

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


# the core's rooms and the rooms each may import (besides itself and the package's face):
# problem and curvature know no engine, configuration builds nothing, the store never runs
# an engine; only `runs` (building and replay) sees everything below it
CORE = {
    "machine": set(),
    "curvature": set(),
    "dynamics": set(),
    "problem": {"machine"},
    "config": {"problem", "machine"},
    "engines": {"problem", "curvature", "dynamics", "machine"},
    "store": {"config", "curvature", "dynamics", "machine"},
    "runs": {"store", "config", "engines", "problem", "curvature", "dynamics", "machine"},
}


def modules():
    """{module name: path} of every source file of the installed package, at any depth
    (`landscape/app/paper/` included): each folder of the package is walked, not listed."""
    out = {}
    roots = {"landscape": ROOT / "landscape", "landscape.recorders": ROOT / "recorders",
             "landscape.analysis": ROOT / "analysis"}  # fmt: skip
    for pkg, folder in roots.items():
        for p in folder.rglob("*.py"):
            rel = p.relative_to(folder).with_suffix("").parts
            parts = rel[:-1] if rel[-1] == "__init__" else rel
            out[".".join((pkg, *parts))] = p
    return out


def test_the_walk_finds_every_installed_module():
    """What setuptools installs is what the rules see (the paper's figure modules included)."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found = {n.rsplit(".", 1)[0] if Path(p).stem != "__init__" else n for n, p in modules().items()}
    for pkg in cfg["tool"]["setuptools"]["packages"]:
        assert pkg in found, pkg
    assert "landscape.app.paper.fig4" in modules()
    # and every package of the tree is installed (a subpackage left out of the list is not in the wheel)
    packages = {n for n, p in modules().items() if Path(p).stem == "__init__"}
    assert packages <= set(cfg["tool"]["setuptools"]["packages"]), packages - set(cfg["tool"]["setuptools"]["packages"])


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


def core_room(mod: str) -> str | None:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in CORE else None


def test_every_core_module_is_in_a_room():
    loose = sorted(p.name for p in (ROOT / "landscape").glob("*.py") if p.stem not in ("__init__", "__main__"))
    assert not loose, f"modules outside the rooms: {loose}"
    for r in CORE:
        face = ROOT / "landscape" / r / "__init__.py"
        assert face.exists() and ast.get_docstring(
            ast.parse(face.read_text())
        ), f"landscape/{r} needs a face with a docstring"


def test_core_rooms_import_one_way():
    bad = []
    for name, path in modules().items():
        mine = core_room(name)
        if mine is None:
            continue
        for dep in imports(name, path):
            theirs = core_room(dep)
            if theirs is not None and theirs != mine and theirs not in CORE[mine]:
                bad.append(f"{name} -> {dep}")
    assert not bad, bad


def test_core_room_rules_have_no_cycle():
    seen: dict[str, int] = {}

    def visit(r):
        seen[r] = 1
        for d in CORE[r]:
            assert seen.get(d) != 1, f"the rooms {r} and {d} import each other"
            if d not in seen:
                visit(d)
        seen[r] = 2

    for r in CORE:
        if r not in seen:
            visit(r)


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
