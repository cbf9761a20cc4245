"""The realtime engine: the Socket.IO server with its encode-once fan-out, the order event
publisher with per-stream sequence numbers and history, recovery of missed events, live stats."""
