"""Model backends: where the tokens of a prompt are evaluated and new ones sampled."""
