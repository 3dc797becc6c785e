"""Does an imitation run's network learn its expert's replica openings? (the hubs and global diagnosis)

Run: ``python -m experiments.bench.replica_labels RUN_DIR`` on a ``bc`` or ``dagger`` run folder. For each
round's samples (``RUN_DIR/data/round_<R>.npz``) and the run's final model it prints: the share of labels
that open a replica (a region cold for the task's model), the model's accuracy on those, the share of them
it sends to overflow instead, and the median logit of the label below the model's choice; then, on those
states, the model's mean probability of the label, of all the admissible cold regions together and of
overflow, and the median number of admissible cold regions (the mass an argmax splits among near-equal
openings). Prints, does not assert.
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
        if opens.any():
            prob = th.softmax(logits, dim=1).numpy()[opens]
            cold = ~layout.warm(d.obs[opens]) & d.mask[opens, :R]
            label = prob[np.arange(prob.shape[0]), d.action[opens]].mean()
            print(
                f"  where the label opens one: probability of the label {label:.3f}, "
                f"of all cold admissible regions {(prob[:, :R] * cold).sum(1).mean():.3f}, of overflow "
                f"{prob[:, R].mean():.3f}; cold admissible regions, median {np.median(cold.sum(1)):.0f}"
            )


if __name__ == "__main__":
    main()
