"""Restoring a trained model and measuring it."""
