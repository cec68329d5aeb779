"""Language ID, routed batched decoding, output formats."""
