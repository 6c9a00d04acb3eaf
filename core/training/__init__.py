"""Training: the night-light proxy CNN (task A of Jean et al. 2016) and the fit on surveyed clusters (task B)."""
