"""`skydns-pdns-backend`: skydns's zone served to PowerDNS over its remote backend protocol."""
