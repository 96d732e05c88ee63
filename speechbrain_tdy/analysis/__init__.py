"""Tools to look inside TDY-CNN models: frame-level embeddings and attention maps."""
from speechbrain_tdy.analysis.extract import (
    attention_maps,
    frame_embeddings,
    frame_labels_at_rate,
    record_attention,
)

__all__ = ["attention_maps", "frame_embeddings", "frame_labels_at_rate", "record_attention"]
