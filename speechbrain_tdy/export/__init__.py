"""Writing model folders: from a recipe run, from the authors' checkpoints, and
the ONNX graph of a folder's waveform-to-embedding pipeline."""
