"""Notebook kernels that run inside project containers."""
