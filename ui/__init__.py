"""The dock widget: a thin front end that runs the Processing algorithm in a task."""
