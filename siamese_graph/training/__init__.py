"""Training: the config, the graph, the hooks, the session loop, the cluster."""
