"""systolix.quantize."""
