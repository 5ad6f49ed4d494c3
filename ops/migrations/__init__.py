"""Versioned Firestore data migrations (`agentctl migrate`): the runner and the numbered steps."""
