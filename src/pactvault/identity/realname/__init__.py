"""Real-name verification (实名认证): who a signer really is, checked and evidenced.

- ``identifiers``: validation and normalisation of Chinese personal identifiers;
- ``providers``: the identity-provider interface, request and result types, assurance levels;
- ``admin_review``: the built-in provider (an organisation administrator reviews ID documents);
- ``testing``: a deterministic provider for tests only, refusing to run anywhere else;
- ``service``: ``VerificationService`` — starting checks, storing results and evidence, reviews,
  expiry, and ``current_identity`` (what certificate issuance requires);
- ``certificates``: how a verified identity becomes a certificate subject with its assurance
  level (certificate policy OIDs), without the ID number.

Nothing is re-exported here, so importing one module never drags in the others.
"""
