"""Who is calling: accounts, organisations and members, passwords, sessions, API tokens.

``principal.Principal`` is what every interface hands to services and ``access.authorize``;
``people`` (organisations, invitations, members), ``passwords`` + ``blocklist`` (policy and
argon2id), ``login`` + ``throttle`` (sign-in, lockout), ``sessions`` (server-side sessions, CSRF)
and ``tokens`` (API tokens) build it. MFA and real-name verification come next.
"""
