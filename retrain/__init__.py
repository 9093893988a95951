"""Retrain, compress, compile: every candidate ends as an optimized ONNX Runtime artifact."""
