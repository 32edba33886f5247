"""Who is calling: API tokens now; accounts, MFA and real-name verification later."""
