"""After the map: statistics per polygon (districts) and a picture of the map."""
