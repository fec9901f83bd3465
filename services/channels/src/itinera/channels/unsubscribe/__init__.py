"""One-click unsubscribe (RFC 8058): signed links in List-Unsubscribe, and their endpoint."""
