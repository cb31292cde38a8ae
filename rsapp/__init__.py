"""rsapp: a local, offline geospatial analyst that chats with remote-sensing imagery."""

__version__ = "0.1.0"
