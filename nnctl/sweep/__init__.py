"""`nnctl sweep` and `nnctl cv`: the sweep file (`spec`), its parameters as an Optuna search
space (`space`), one trial or fold as a job (`jobs`), where jobs run — local processes or a Ray
cluster (`runners`) — and the driver that asks Optuna, runs jobs and writes the folder
(`driver`)."""
