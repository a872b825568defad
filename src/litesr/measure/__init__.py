"""Cost measurement of SR models: parameters, MACs, latency and peak memory."""
