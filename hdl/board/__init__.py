"""Board top levels: the link top (:mod:`systolix.hdl.link.top`) on real boards (amaranth-boards platforms)."""
