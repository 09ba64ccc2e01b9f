"""The web front end, in Vietnamese, for district and provincial offices and for unit staff.

Served by the read API under ``/web/`` (``mount_web``): pages rendered on the server, a small
script for live updates and file uploads, no third-party JavaScript. A page acts with the token
the user pasted at login, kept on the server in a session the HttpOnly cookie names by a random id
(services/api/web/session.py), and checks its unit and scopes exactly as the HTTP API does; reports go
to ingest over HTTP with that token. State-changing requests must come from the site's own origin
and carry the session's CSRF token (services/api/web/security.py).
"""
