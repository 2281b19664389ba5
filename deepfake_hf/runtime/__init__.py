"""Running at scale: distributed ranks, thread budgets, and output folders and files."""
