"""Catch-up with both sides at their best: scenarios, configurations per lever, order-free attribution, the
headline analysis, its stability over declared ranges, and the trajectory over chip generations (SIMULATED)."""
