"""The actors of the block: mobile users, the base station, the GPU servers.

The ground floor of the project: agents import nothing from `world`,
`policies` or `scenarios`; they reach the physics through their model and are
handed their engines by whoever builds them.
"""
