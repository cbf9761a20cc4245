"""The order domain, one job per module.

- pricing.py: order lines at current prices, totals, the canonical hash of a request body.
- placing.py: OrderPlacing, placing an order (stock, all lines or none, idempotency).
- reading.py: OrderReader, reading orders with the visibility rules.
- status.py: OrderStatusChanges, moving an order through the state machine (compare-and-swap).
- followup.py: OrderFollowUp, what every write is followed by (publish its outbox, apply its
  effects once, tell the listeners); shared by the writers and the repair pass.
- sweeper.py: OrderSweeper, the background pass (confirmation timeout, repair of interrupted
  placements, events and effects a dead writer left).

Why each step is crash safe without transactions: docs/architecture.md, "Crash safety of the order path".
"""
