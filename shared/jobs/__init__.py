"""Heavy work on a queue: jobs in Firestore, published to Pub/Sub, run by the worker function."""
