"""`python -m nnctl` works like `nnctl`."""
from .cli import main

main()
