"""Projections of what a device or a cluster would do: the serving model for LLMs at scale (`serving`), its
architecture description (`arch`), interconnect and collectives (`interconnect`), efficiency factors
(`efficiency`), and its validation against published results (`published`) and this host (`hostcheck`).

Pure Python over published configs and device profiles: nothing here imports torch or allocates weights.
"""
