"""Graft's built-in features, written as ordinary plugins on the public hooks."""
