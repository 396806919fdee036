"""Our queue: calls, agents, queues, and the detection of every call's outcome."""
