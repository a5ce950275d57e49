"""Training: build the config's network (`build`), run the loop (`loop`) with early stopping
(`stopping`), score parts of the data (`scoring`), report to callbacks (`callbacks`) and stop
cleanly on Ctrl-C (`signals`). Nothing here prints or writes files."""
from .callbacks import Callback
from .loop import TrainResult, train

__all__ = ["Callback", "TrainResult", "train"]
