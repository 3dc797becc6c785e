"""Learned placement agents: SB3 training, a region-scalable policy, callbacks and evaluation.

``agents.train.train(TrainConfig(...))`` trains; ``agents.evaluate.Agent.load(path)`` reloads a model behind
the heuristics' ``act`` / ``plan`` interface; ``agents.evaluate.evaluate_episodes`` and ``summarise`` build
the benchmark table against the heuristics, the rolling MILP and the hindsight oracle.
"""
