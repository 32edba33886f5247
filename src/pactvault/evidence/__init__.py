"""Evidence for third parties: ledger exports, per-contract proof bundles, and their verifiers.

``bundle`` and ``offline`` verify without a server and depend only on the pure parts of
``pactvault.ledger`` (merkle, proofs, note, checkpoint, records, errors), the standard library and
``cryptography`` — an auditor can vendor them. ``export`` produces what they check, from the
platform database. Nothing is imported here, so importing a verifier does not pull in the other.
"""
