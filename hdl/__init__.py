"""systolix.hdl."""
