"""tsa layer: RFC 3161 timestamps.

``authority`` issues tokens, ``client`` gives pyHanko fail-closed timestampers, ``verify`` checks
a response against its request, ``asn1`` fixes asn1crypto's TimeStampResp definition.
"""
