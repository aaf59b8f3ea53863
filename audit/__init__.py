"""The audit trail: the record, the hash-chained writer, the reader of its files, verify, and
what is read from it (report, replay, provenance). It knows nothing of LSP."""
