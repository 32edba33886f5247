"""HTTP routes: translate requests into service calls, nothing more."""
