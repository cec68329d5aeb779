"""Utterances, manifests, corpus readers, batching and features."""
