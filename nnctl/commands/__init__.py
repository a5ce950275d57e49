"""One module per command family, each a plain function the CLI calls and tests can call too:
`train` (train_config), `predict` (predict and evaluate), `gradcheck`, `trace`, `plot`."""
