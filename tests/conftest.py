import os

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def digits_teacher(tmp_path_factory):
    """A digits `cnn` teacher trained once per session (10 epochs, a few seconds): its checkpoint path."""
    from dfkd.run.teacher import build_teacher_config, train_teacher

    out = tmp_path_factory.mktemp("teachers")
    cfg = build_teacher_config(sets=[f"out={out}", "train.epochs=10", "tracking.mode=disabled", "device=cpu"])
    path, acc = train_teacher(cfg, quiet=True)
    assert acc >= 95.0, f"digits teacher only reached {acc:.2f}%"
    return path


# Property tests (hypothesis) are derandomized by default (in CI and in `pytest` alike): the same
# examples every run, so a failure is a finding to fix, never noise. To explore new examples, run
# with DFKD_HYPOTHESIS_EXPLORE=1 (and add what it finds as an @example).
try:
    from hypothesis import settings as _hyp

    _hyp.register_profile("derandomized", derandomize=True, print_blob=True)
    _hyp.register_profile("explore", print_blob=True)
    _hyp.load_profile("explore" if os.environ.get("DFKD_HYPOTHESIS_EXPLORE") == "1" else "derandomized")
except ImportError:  # hypothesis is a dev extra
    pass
