"""The example notebook runs end to end on the shipped store, so it cannot rot."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.subprocess
def test_explore_run_notebook_executes(tmp_path, monkeypatch):
    nb = nbformat.read(ROOT / "notebooks" / "explore_run.ipynb", as_version=4)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("LANDSCAPE_ROOT", str(ROOT))
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "Error" not in outputs
    for png in ("explore_run.png", "explore_slice.png", "explore_pca.png"):
        assert (tmp_path / png).exists(), png
