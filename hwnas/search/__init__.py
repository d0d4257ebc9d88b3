"""Search: evaluators, constraints, the reward, NSGA-II and FNAS."""
