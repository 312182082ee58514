"""systolix.sim."""
