"""The network: layers, nets (one file each), towers, heads, losses, schedules, the train_dir format."""
