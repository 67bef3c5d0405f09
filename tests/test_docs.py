"""The README and docs say what the code does: their Python blocks run, and every `landscape …`
command line they show names a real command and real options."""

import re
import shlex
from pathlib import Path

import click
import pytest

from landscape.app.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "docs" / "howto").glob("*.md")),
    *sorted((ROOT / "docs" / "reference").glob("*.md")),
    ROOT / "data" / "README.md",
]


def python_blocks():
    for doc in DOCS:
        for i, block in enumerate(re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)):
            yield pytest.param(block, id=f"{doc.name}-{i}")


def command_lines():
    for doc in DOCS:
        text = doc.read_text()
        lines = re.findall(r"^(?:    |)(landscape (?:record|sweep|info|analyze|plot|reproduce)\b.*)$", text, flags=re.M)
        for line in lines:
            yield pytest.param(line.split("  #")[0].rstrip(" \\`"), id=f"{doc.name}:{line[:60]}")


@pytest.mark.parametrize("code", list(python_blocks()))
def test_python_block_runs(code, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")  # the test's choice; the package never chooses a backend
    monkeypatch.chdir(ROOT)
    exec(compile(code, "<doc>", "exec"), {})


@pytest.mark.parametrize("line", list(command_lines()))
def test_command_line_names_real_options(line):
    words = [w for w in shlex.split(line.replace("…", ""))[1:]]
    cmd: click.Command = main
    while isinstance(cmd, click.Group):
        name = words.pop(0)
        assert name in cmd.commands, f"no command '{name}' in: {line}"
        cmd = cmd.commands[name]
    known = set()
    for p in cmd.params:
        known.update(getattr(p, "opts", []))
        known.update(getattr(p, "secondary_opts", []))
    for w in words:
        if w.startswith("-") and not w.startswith("[") and not re.fullmatch(r"-?\d[\d.,e-]*", w):
            assert w.split("=")[0] in known, f"'{w}' is not an option of landscape {cmd.name}: {line}"


def toml_blocks():
    for doc in DOCS:
        for i, block in enumerate(re.findall(r"```toml\n(.*?)```", doc.read_text(), flags=re.S)):
            yield pytest.param(block, id=f"{doc.name}-toml-{i}")


@pytest.mark.parametrize("text", list(toml_blocks()))
def test_toml_block_is_a_valid_sweep(text, tmp_path):
    from landscape.config.sweep import load_toml

    f = tmp_path / "sweep.toml"
    f.write_text(text)
    spec = load_toml(f)
    assert spec.num_runs() > 0


def dotted_names():
    """Every `landscape.a.b…` the docs name in backticks (a module, a function, a class)."""
    seen = set()
    for doc in DOCS:
        for name in re.findall(r"`(landscape(?:\.[A-Za-z_]\w*)+)", doc.read_text()):
            if name not in seen:
                seen.add(name)
                yield pytest.param(name, id=f"{doc.name}:{name}")


@pytest.mark.parametrize("name", list(dotted_names()))
def test_dotted_name_resolves(name):
    """A name the docs tell a user to import or call exists where they say."""
    import importlib

    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            assert hasattr(obj, attr), f"{name}: {'.'.join(parts[:i])} has no '{attr}'"
            obj = getattr(obj, attr)
        return
    raise AssertionError(f"{name}: no such module")


def test_there_are_blocks_to_check():
    assert len(list(python_blocks())) >= 2 and len(list(command_lines())) >= 20 and len(list(dotted_names())) >= 15


def doctested_modules():
    """Every module of the installed package (recorders and analysis included) whose
    docstrings hold `>>>` examples."""
    roots = {"landscape": ROOT / "landscape", "landscape.recorders": ROOT / "recorders",
             "landscape.analysis": ROOT / "analysis"}  # fmt: skip
    for pkg, folder in roots.items():
        for p in sorted(folder.rglob("*.py")):
            if ">>> " in p.read_text():
                rel = p.relative_to(folder).with_suffix("").parts
                yield ".".join((pkg, *(rel[:-1] if rel[-1] == "__init__" else rel)))


def test_the_doctest_walk_reaches_the_rooms_outside_landscape():
    assert "landscape.analysis.generalization" in list(doctested_modules())


@pytest.mark.parametrize("name", list(doctested_modules()))
def test_docstring_examples_run(name, monkeypatch):
    import doctest
    import importlib

    monkeypatch.chdir(ROOT)
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, result


def test_the_public_face_is_cheap_and_complete():
    import subprocess
    import sys

    import landscape

    code = "import sys, landscape; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    for name in landscape.__all__:
        assert getattr(landscape, name) is not None, name
    with pytest.raises(AttributeError):
        landscape.no_such_name  # noqa: B018


def test_the_generated_tables_of_the_performance_notes_are_their_benchmarks_json():
    """A table between `<!-- table: bench/results/X.json -->` markers is what bench/tables.py
    renders from the JSON the benchmark wrote (`--json`): no number typed in by hand, none stale."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("bench_tables", root / "bench" / "tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    text = (root / "docs" / "performance.md").read_text()
    blocks = list(tables.BLOCK.finditer(text))
    assert {m["src"] for m in blocks} >= {
        "bench/results/surface.json",
        "bench/results/spectrum_size.json",
        "bench/results/peers_small.json",
    }
    for m in blocks:
        assert (root / m["src"]).is_file(), m["src"]
    assert tables.regenerate(text) == text, "run python bench/tables.py"
    # and the renderer is not the identity: a changed row shows
    import json

    table = json.loads((root / blocks[0]["src"]).read_text())
    table["rows"][0][0] = "a row the run did not write"
    assert "a row the run did not write" in tables.render(table) and tables.render(table) not in text
