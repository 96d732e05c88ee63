"""From waveforms to embeddings: the pipeline (front end + model, exact under
padding, chunked for long inputs), its compiled forward, the one way a file
becomes an embedding, batch embedding of many files, and a model's fingerprint."""
