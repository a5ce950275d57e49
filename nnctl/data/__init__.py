"""Files -> tables -> arrays: reading CSVs (`csvfile`), encoding columns the same way at training
and predict time (`encoding`), the Dataset with its split (`dataset`), and the cache of prepared
datasets (`cache`)."""
from .dataset import Dataset, load_dataset, load_seeds

__all__ = ["Dataset", "load_dataset", "load_seeds"]
