"""Publishing: native export, the Hub (models and Spaces) and model cards."""
