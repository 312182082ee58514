"""systolix.frontend."""
