"""Detectors: data drift (embeddings, model outputs) and concept drift, scheduled, with alerts."""
