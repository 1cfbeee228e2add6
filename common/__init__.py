"""What the agent and the server share: the wire schemas, the health score, constants.

This package imports nothing of ours and nothing heavier than pydantic, so the agent stays small.
"""
