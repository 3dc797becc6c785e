"""Does an imitation run's network learn its expert's replica openings? (the hubs and global diagnosis)

Run: ``python -m experiments.bench.replica_labels RUN_DIR`` on a ``bc`` or ``dagger`` run folder. For each
round's samples (``RUN_DIR/data/round_<R>.npz``) and the run's final model it prints: the share of labels
that open a replica (a region cold for the task's model), the model's accuracy on those, the share of them
it sends to overflow instead, and the median logit of the label below the model's choice. Prints, does not
assert.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch as th

from agents.evaluate import Agent
from agents.imitation import Samples
from envs.dynamics import ObsLayout
from envs.scenario import Scenario


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    run = ap.parse_args().run
    scenario = Scenario.load(json.loads((run / "config.json").read_text())["scenario"])
    layout = ObsLayout.of(scenario)
    policy = Agent.load(run / "model.zip").model.policy
    for path in sorted((run / "data").glob("round_*.npz")):
        d = Samples.load(path)
        R = d.mask.shape[1] - 1
        with th.no_grad():
            logits = policy.mlp_extractor(th.as_tensor(d.obs))[0].masked_fill(~th.as_tensor(d.mask), -th.inf)
        logits_np = logits.numpy()
        pred = logits_np.argmax(1)
        rows = np.arange(d.action.size)
        opens = d.opens_replica(layout)
        margin = logits_np[rows, d.action] - logits_np.max(1)
        print(
            f"{path.stem}: {d.action.size} samples, accuracy {(pred == d.action).mean():.3f}; labels opening a "
            f"replica {opens.mean():.1%}, of which predicted {(pred[opens] == d.action[opens]).mean():.1%}, sent to "
            f"overflow {(pred[opens] == R).mean():.1%}, median logit below the choice "
            f"{-np.median(margin[opens]) if opens.any() else float('nan'):.3f}"
        )


if __name__ == "__main__":
    main()
