"""`python -m nnctl` works like `nnctl`."""
from .cli import main

# guarded: worker processes started with "spawn" import the parent's main module again
if __name__ == "__main__":
    main()
