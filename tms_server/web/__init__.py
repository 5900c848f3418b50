"""The HTTP layer: thin handlers, one error middleware, the URL map in tms_server.app."""
