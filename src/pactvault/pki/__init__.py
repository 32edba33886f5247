"""pki layer: pactvault's own certificate authority.

``identity`` (subjects and OIDs), ``ca`` (certificate profiles), ``revocation`` (CRL and OCSP)
and ``signing`` (key/hash pairing) are pure; ``authority`` persists keys and certificates.
"""
