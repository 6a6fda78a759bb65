"""Allocation policies of the base station: learners and baselines, one interface.

Every policy maps per-request observations to per-request actions in [0, 1]
(layouts: `agents.base_station.OBS_FEATURES` and `ACTION_FEATURES`) through
`predict(obs, deterministic)`. The learners (`ddpg.DDPG`, `gddpg.GDDPG`) also
have `update(batch)`, `save` and `from_checkpoint`; `heuristics` holds the
baselines (fixed, random, greedy, grid optimum); `env.AllocationEnv` is the
Gymnasium environment over `world.city.CityBlock` they are trained in.
`library.LibraryEnv` (flat, scaled, actions in [-1, 1]) and `library.RequestView`
(one transition per rated request) are that environment as other RL libraries
expect it; `sb3.SB3Learner` runs Stable-Baselines3 on the per-request view.
"""
