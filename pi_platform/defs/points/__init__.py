"""The PI point catalog."""
