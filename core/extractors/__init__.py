"""Features: a batch of tiles in, one feature vector per tile out (histograms, random convolutions, the night-light CNN); kinds listed in registry."""
