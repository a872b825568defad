"""Figures, tables, provenance and the PDF report."""
