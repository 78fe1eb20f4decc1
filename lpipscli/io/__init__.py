"""Input side: discovery, pairing, decoding, datasets (no metric math here)."""
