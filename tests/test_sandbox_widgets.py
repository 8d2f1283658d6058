"""The grader's notebook execution (labsupport/grading/sandbox/execute.py) with widget cells: a
`widgets.slider` cell and a plain `W.Output` cell (as in notebook 05) run to the end under bubblewrap,
with the slider's still image in the executed copy. nbclient's own Output-widget emulation, with
store_widget_state=False, would stop the notebook with a KeyError on the widget's comm id."""
from __future__ import annotations

import shutil

import nbformat
import pytest

from labsupport.grading.sandbox import Limits, execute_notebook

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None,
                                reason="bubblewrap is not installed (apt-get install bubblewrap)")

SLIDER = """import matplotlib.pyplot as plt
from labsupport.teaching import widgets

def draw(v):
    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, v])
    ax.set_title(f"v = {v}")

explorer = widgets.slider(draw, min=0, max=10, value=3)
explorer.control.value = 7   # the observer redraws, as when the slider moves
"""

OUTPUT = """import ipywidgets as W
from IPython.display import display
out = W.Output()
display(out)
with out:
    out.clear_output(wait=True)
    print('inside the output widget')
"""


def test_widget_cells_run_to_the_end(bwrap, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SLIDER), nbformat.v4.new_code_cell(OUTPUT),
                nbformat.v4.new_code_cell("print('after the widgets')")]
    nbformat.write(nb, workdir / "submission.ipynb")
    result = execute_notebook(workdir / "submission.ipynb", tmp_path / "executed.ipynb",
                              Limits(cell_timeout=60, total_timeout=120), backend=bwrap)
    assert result.status == "ok" and result.cells_run == 3 and result.errors == [], result
    executed = nbformat.read(tmp_path / "executed.ipynb", as_version=4)
    (shown,) = executed.cells[0].outputs          # one output: the widget view with its still image
    assert {"application/vnd.jupyter.widget-view+json", "image/png"} <= set(shown["data"])
    assert "inside the output widget" in "".join(o.get("text", "") for o in executed.cells[1].outputs)
    assert executed.cells[2].outputs[0]["text"] == "after the widgets\n"
    assert "widgets" not in executed.metadata   # no widget state: exports show the still image
