"""The Mesa model of the city block and the engines its agents live in.

Imports point one way: `world` uses `agents`, never `policies` or `scenarios`.
Importing `world` switches the libraries that could reach the network offline (`world.offline`).
"""

from world.offline import go_offline

go_offline()
