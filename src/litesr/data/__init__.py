"""Data handling: MATLAB-exact bicubic resizing and the bicubic degradation."""
