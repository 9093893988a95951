"""Labeling: the queue of samples worth a person's time, synced with Label Studio."""
