"""Execution: R replicas of gradient descent in lockstep. The shared base (Γ, accuracy, the
spectra on healthy replicas), the built-in MLP engine, the engine for a user's module, and the
step strategies (eager, compiled, fused C++) that the MLP engine delegates to."""
