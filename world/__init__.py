"""The Mesa model of the city block and the engines its agents live in.

Imports point one way: `world` uses `agents`, never `policies` or `scenarios`.
"""
