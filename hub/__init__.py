"""Market Hub: the realtime backend of a food-market platform."""
