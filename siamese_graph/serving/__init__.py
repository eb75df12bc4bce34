"""Serving: SavedModel signatures, TFLite and the phone's reference."""
