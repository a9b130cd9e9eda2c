"""Sharing a finished run: the model card and the Hub."""
