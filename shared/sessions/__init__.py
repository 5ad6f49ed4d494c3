"""WebSocket sessions at ``/v1/sessions`` on the stream function: the protocol and its server."""
