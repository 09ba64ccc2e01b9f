"""The web front end, in Vietnamese, for district and provincial offices and for unit staff.

Served by the read API under ``/web/`` (``mount_web``): pages rendered on the server, a small
script for live updates and file uploads, no third-party JavaScript. A page acts with the token
the user pasted at login, kept in a signed, HttpOnly session cookie, and checks its unit and
scopes exactly as the HTTP API does; reports go to ingest over HTTP with that token.
"""
