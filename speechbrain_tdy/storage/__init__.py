"""Files on disk: atomic writes, bounded reads of user-given files, the model-folder format and its checked readers,
the safe loader of untrusted ``hyperparams.yaml``, run folders and the one
checkpoint policy, embeddings files."""
