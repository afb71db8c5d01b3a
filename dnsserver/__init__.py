"""skydns: the health-aware DNS responder."""
