"""The feed runtime: WebSocket connections to the exchanges, written once for every adapter."""
