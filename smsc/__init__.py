"""smsc: a self-hosted SMPP 3.4 server and SMS switch on Twisted."""

__version__ = "0.1.0"
