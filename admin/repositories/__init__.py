"""Queries. Every function that touches an organisation's data takes `org_id` as a required
keyword argument, so no caller can forget the scope. Nothing here knows about HTTP."""
