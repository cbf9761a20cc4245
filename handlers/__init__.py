"""Transport adapters: REST route handlers and Socket.IO namespaces."""
