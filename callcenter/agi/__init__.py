"""FastAGI and classic AGI for ``app_queue`` sites: protocol, server, voice channel, hooks (edge)."""
