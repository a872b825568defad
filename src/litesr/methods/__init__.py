"""Compression methods, each one module on top of the shared data, training and evaluation."""
