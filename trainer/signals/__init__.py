"""Where tomorrow's signals are made from the promoted (or candidate) model, and where past signals
are later scored against what the prices did (the live track record)."""
