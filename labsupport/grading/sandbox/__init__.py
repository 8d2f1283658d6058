"""Running untrusted notebooks: limits, a capped kernel, and the probe's process."""
