"""What the run's machine offers: torch threads, training processes, bf16, and the main-process check."""
