"""The network: layers, towers, heads, losses, preprocessing, the train_dir format."""
