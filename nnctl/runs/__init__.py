"""What training leaves on disk: run folders written atomically and listed (`folder`), and
`model.npz` with the `Model` that predicts from it (`model`)."""
