"""Webhooks: order events for REST clients, signed by the Standard Webhooks specification.

- signing.py: secrets and the `webhook-*` headers;
- address_guard.py: which URLs and addresses the hub may send to (SSRF);
- schedule.py: when a failed delivery is tried again;
- outbox.py: deliveries made from an order's outbox (hub/orders.py), idempotently;
- sender.py: any instance sends due deliveries under a lease;
- endpoints.py: registering and managing endpoints, and the delivery log.
"""
