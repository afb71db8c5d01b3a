"""skydns-cloudstack: CloudStack virtual machines as records (see README.md)."""
