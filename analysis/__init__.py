"""Analysis of saved runs: reads stores, never imports the recorders."""
