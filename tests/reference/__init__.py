"""Python stand-ins for the Go reference implementation (4kills/hole-punching)."""
