"""The paper's constants and the Fig. 4 cost, against the spec's grid written out by hand."""

from landscape.app.paper import fig2 as paper_fig2
from landscape.app.paper import fig4 as paper_fig4
from landscape.app.reproduce import specs


def test_fig4_run_steps_is_the_grid_written_out():
    # DCE η 0.5, 0.7, 1.0, 1.4; DMSE1 0.2, 0.3, 0.4; DMSE2 0.12, 0.2, 0.3; 3 A × 2 T × 30 seeds; ceil(1e5/η) steps
    etas = [0.5, 0.7, 1.0, 1.4, 0.2, 0.3, 0.4, 0.12, 0.2, 0.3]
    per = 3 * 2 * 30
    steps = [200000, 142858, 100000, 71429, 500000, 333334, 250000, 833334, 500000, 333334]
    assert paper_fig4.run_steps() == per * sum(steps)
    assert paper_fig4.run_steps(early=True) == per * len(etas) * paper_fig4.EARLY_STEPS


def test_reproduce_uses_the_constants():
    full = specs("fig4", "full")
    assert {k.split("_")[1]: s.base.etas for k, s in full.items()} == paper_fig4.ETAS
    assert paper_fig2.slice_steps(10000) == [8000, 9285, 9450, 9560, 9600]
    assert paper_fig2.slice_steps(9500) == [8000, 9285, 9450]  # each with 20 iterates after it
