"""Domain apps of STAMM on Django."""
