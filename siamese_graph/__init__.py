"""siamese-graph: a TF1-graph-style siamese face-verification pipeline."""
