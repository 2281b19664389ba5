"""`deepfake-hf bench`: speed and memory measurements written as JSON."""
