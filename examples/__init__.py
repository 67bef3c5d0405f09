"""Example model factories for `landscape record --model examples.MODULE:FACTORY`."""
