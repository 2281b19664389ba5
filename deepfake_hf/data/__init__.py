"""Data sources (folders, manifests, DeepfakeBench JSON), face-crop preprocessing and SBI synthesis."""
