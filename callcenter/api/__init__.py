"""The HTTP API under ``/api/v1`` (edge); ``callcenter.api.app.build_api`` builds it."""
