"""The problem being trained: the data, the network (built-in MLP or a user's module), the
losses and the Γ(t) schedule — what a run is about, independent of how it is executed."""
