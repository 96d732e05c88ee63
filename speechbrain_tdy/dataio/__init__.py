"""Data IO: speaker-balanced sampling, manifests, trial lists, audio reading."""
