"""pydantic models for what crosses an edge: request bodies, queries, replies and event payloads.

Inputs forbid unknown fields, so a body can never smuggle in a role, an owner or a flag.
"""
