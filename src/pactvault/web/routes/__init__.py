"""Page routes: translate browser requests into service calls and templates, nothing more."""
