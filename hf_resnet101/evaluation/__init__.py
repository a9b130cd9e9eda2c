"""Measuring a model: metrics (from modules shipped in the package), the confusion matrix and the plots."""
