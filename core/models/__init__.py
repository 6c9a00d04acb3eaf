"""Models: the model file and the models bundled with the plugin."""
