"""Campaign files: their models, their loader, and the snapshot a journey runs on."""
