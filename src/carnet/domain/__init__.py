"""Domain services and models: records, documents, consents, traces."""
