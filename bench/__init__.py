"""Load and latency benchmark for the Market Hub realtime path (issue 7)."""
