"""keys layer: root key → per-organisation KEKs → a fresh data key per stored object.

``service`` is the backend-neutral interface (local key store today, PKCS#11 HSM or an external
KMS later); ``local`` implements it with a root key kept in a file under the data directory.
"""
