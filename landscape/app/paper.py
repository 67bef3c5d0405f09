"""The paper's constants, each once: Fig. 4's learning rates, Fig. 2's slice steps, and
the cost of Fig. 4's full sweep on this machine."""

from __future__ import annotations

# Fig. 4: η per loss (the spec's grid; A 25/50/75 × T 5000/10000 × 30 seeds, 100000/η steps)
FIG4_ETAS = {"dce": (0.5, 0.7, 1.0, 1.4), "dmse1": (0.2, 0.3, 0.4), "dmse2": (0.12, 0.2, 0.3)}
FIG4_AMPLITUDES = (25.0, 50.0, 75.0)
FIG4_PERIODS = (5000, 10000)
FIG4_SEEDS = 30
FIG4_STEPS_PER_ETA = 100000
# Fig. 2: the steps of the loss slices (DCE, A = 70, T = 5000, η = 1)
FIG2_SLICE_STEPS = (8000, 9285, 9450, 9560, 9600)
# `reproduce --scaled`: the paper's grids with what a 2-core CPU runs in hours (docs/results/paper/).
# Fig. 4 stops each batch at its first instabilities, capped at 20000 steps (two periods at T = 10000)
# instead of 100000/η; Fig. 3 runs 100000 steps (20 periods), long enough that training accuracy has
# stopped changing at the widths that learn; Fig. 1 runs long enough for width 100 to leave 2/η.
SCALED_FIG4_SEEDS = 10
SCALED_FIG4_STEPS = 20000
SCALED_FIG3_WIDTHS = (5, 10, 20, 50, 100, 200)
SCALED_FIG3B_LONG_WIDTHS = (100, 200)  # panel (b) at 300 000 steps: DMSE1 still learns at 100 000
SCALED_FIG3B_LONG_STEPS = 300000
SCALED_FIG3_STEPS = 100000
SCALED_FIG3A_SEEDS = 16
SCALED_FIG3B_SEEDS = 8
SCALED_FIG1_STEPS = 50000
SCALED_FIG1_LONG_STEPS = 200000  # width 100 only: does it leave the edge of stability?
# first instabilities came within 5000 steps in docs/RESULTS.md: with --until first-instability
# a run takes about this many steps
FIG4_EARLY_STEPS = 6200


def fig4_run_steps(early: bool = False) -> int:
    """Run-steps of the paper's full Fig. 4 sweep (all three losses), or with an early stop."""
    runs = len(FIG4_AMPLITUDES) * len(FIG4_PERIODS) * FIG4_SEEDS
    total = 0
    for etas in FIG4_ETAS.values():
        for eta in etas:
            steps = -(-FIG4_STEPS_PER_ETA // eta)
            total += runs * int(min(steps, FIG4_EARLY_STEPS) if early else steps)
    return total


def fig2_slice_steps(recorded_steps: int, follow: int = 20) -> list[int]:
    """The paper's slice steps that a recording of this length holds (with `follow` iterates)."""
    return [s for s in FIG2_SLICE_STEPS if s + follow < recorded_steps]
