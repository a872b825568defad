"""litesr: light, fast and memory-frugal super-resolution, replicated as a Snakemake workflow."""

__version__ = "0.1.0"
