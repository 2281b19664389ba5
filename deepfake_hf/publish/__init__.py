"""Publishing: native export, the Hub (models and Spaces), model cards and the Inference Endpoints handler
(`endpoint`: handler.py, a copy of `endpoint_handler`, and its requirements.txt)."""
