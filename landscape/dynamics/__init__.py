"""The iterates' dynamics: the per-step signals of θ_t (the alternating component and its
multiplier) and the instability detector that reads them."""
