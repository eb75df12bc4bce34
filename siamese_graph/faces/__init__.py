"""Faces from photos: detection, alignment, the face check, the photo loader."""
