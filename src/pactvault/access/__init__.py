"""Who may do what: permissions, built-in and custom roles, and the one decision function.

``permissions`` is a pure table (no I/O) so that ``identity`` can resolve a caller's permissions
without importing the services here; ``decision`` holds ``decide``/``require`` (pure) and
``AccessControl.authorize`` (which also audits denials); ``roles`` stores custom roles and
enforces the anti-escalation rules for granting roles.
"""
