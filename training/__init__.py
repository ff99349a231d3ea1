"""Training of the shipped critics: data, loop, export."""
