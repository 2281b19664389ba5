"""Training: recipes, the Trainer run, the offline quickstart."""
