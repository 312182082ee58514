"""systolix.quantize.golden."""
