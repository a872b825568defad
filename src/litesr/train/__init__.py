"""The one training entry point shared by every method: patches, optimiser, loop, checkpoints."""
