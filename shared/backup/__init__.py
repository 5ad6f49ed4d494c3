"""Logical Firestore backups: consistent snapshots as NDJSON shards, verified, restored, pruned."""
