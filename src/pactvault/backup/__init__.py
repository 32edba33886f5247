"""Encrypted, signed backups, restores that verify everything, and scheduled restore drills.

Modules, each with one job:

* ``service``      — taking, listing, verifying and pruning backups (``BackupService``);
* ``snapshot``     — consistent database snapshots (SQLite online backup, ``pg_dump`` of an
  exported snapshot) and the facts a manifest promises about them;
* ``archive``      — the per-backup data key (sealed by the root key) and encrypted files;
* ``manifest``     — what a backup holds, canonical JSON signed with Ed25519;
* ``identity``     — the instance id and the manifest signing key (wrapped in the database);
* ``destinations`` — directories and S3-compatible storage, with confirmation of every object;
* ``retention``    — hourly / daily / monthly pruning policy;
* ``restore``      — verify-then-install restore into a new data directory or database;
* ``checks``       — what a restored instance must prove (auditor, journal, ledger, signatures);
* ``drill``        — scheduled restores into scratch space, RPO and RTO, alerts;
* ``shamir``, ``shares``, ``rootkey`` — the key ceremony: the root key in M-of-N shares.

**What an operator must keep, apart from the backups** (a backup alone is useless by design):

1. the key ceremony's shares — any *M* of the *N* custodians' ``PVK1-…`` shares rebuild the root
   key and the backup verification key (re-run the ceremony after every root key rotation);
   or, instead, an offline copy of ``keys/root-key.json`` together with its passphrase and the
   backup key fingerprint printed by ``export-root-key``;
2. the passphrase policy: a restored root key is sealed under whatever ``PACTVAULT_PASSPHRASE``
   is set when ``import-root-key`` runs;
3. the instance's public URL (``PACTVAULT_PUBLIC_URL``): it names the evidence ledger and is in
   every certificate, and a restore must use the same one;
4. the destination settings (and S3 credentials) to reach the backups.

Not in backups: the root key (above), the development mail/SMS outboxes (delivery logs, not
state) and anything outside the data directory and database. Blobs are copied exactly as stored
(already encrypted; their small headers name organisation and contract ids, as on disk).

Crypto-shredding caveat: destroying an organisation's KEK makes its documents unreadable in the
live instance at once, but a backup taken before holds the KEK as it was; the shredding reaches
the backups when the last of those backups is pruned (``PACTVAULT_BACKUP_RETENTION``).
"""
