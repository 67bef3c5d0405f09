"""What the machine offers a run: usable cores and memory (cgroups included), the allocator
setting, and the optional packages some commands need."""
