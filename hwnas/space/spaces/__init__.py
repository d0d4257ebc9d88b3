"""Built-in spaces, one file each."""
