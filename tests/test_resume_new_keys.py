"""A run checkpointed before a config key existed still resumes (data.exclude, data.positive_class)."""
from pathlib import Path

from nnctl.commands.train import resume_config
from nnctl.config import load_config
from nnctl.training.checkpoint import Checkpoint

from .conftest import CONFIGS


def test_a_checkpoint_config_without_the_new_data_keys_resumes():
    saved = load_config(CONFIGS / "iris.yaml").to_dict()  # as checkpoint meta holds it: JSON
    for key in ("exclude", "positive_class"):
        del saved["data"][key]  # as an nnctl from before these keys wrote it
    checkpoint = Checkpoint({}, {"config": saved, "completed": 10}, Path("old-run"))
    cfg = resume_config(checkpoint, ["training.iterations=400"])
    assert cfg.data.exclude == [] and cfg.data.positive_class is None
    assert cfg.training.iterations == 400
