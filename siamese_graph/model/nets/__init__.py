"""Towers: image batch [B, S, S, 3] -> feature batch [B, D]."""
