"""crypto layer: pure primitives (AEAD, chunked streaming AEAD, hashing, canonical encodings).

Nothing here touches the database, the key store or the filesystem beyond the streams and paths
handed in, so every function can be tested and reasoned about in isolation.
"""
